"""Every command that README.md and docs/*.md show runs, or is checked, on a tiny budget.

The commands are read from the documents themselves (tests/doc_commands.py),
so a command documented later without a working invocation fails here. They
are taken in the order a reader meets them (README.md, then docs/*.md by
name), in one work folder that holds links to `scripts/` and `configs/`, so
that a command finds what an earlier one wrote (the main job's run for
`pictures.py`, a grid for `paired.py`).

Each command runs as a subprocess with a tiny budget appended to it
(`TINY`: one epoch of 128 images, one seed and one noise rate of a grid,
one trial; later flags override earlier ones), unless:
  - it cannot run here: `NOT_RUN` names it and says why; or
  - an earlier command of the same script ran (`kind`). Running all 70
    would take most of an hour; instead its flags are checked against the
    script's own, and its config, with its variant and every override, is
    parsed by the script's own flag and checked as `training` checks it
    before any work (`check_without_running`). Its work directory stands
    for the run of its kind: later commands that read it read that run's.
What each run must write is `WRITES`, from the documents' own words.
"""

import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import doc_commands  # tests/ has no __init__.py: pytest's prepend import mode puts it on sys.path
from tf_causalnl.experiments import tuning_config
from tf_causalnl.training import config_checks

ROOT = doc_commands.ROOT
COMMANDS = doc_commands.documented()

#: (script, a piece of the command's text) -> why it does not run here.
NOT_RUN = {
    ("train", "TF_CONFIG"): "a MultiWorkerMirroredStrategy cluster of two hosts (tests/test_distribute.py runs "
                            "two workers on localhost)",
    ("tune", "KERASTUNER_TUNER_ID"): "a chief and a worker on two hosts sharing /shared (tests/test_tuning.py runs "
                                     "them on localhost)",
    ("reference_step_torch", ""): "PyTorch, installed beside the project in /tmp/torch by hand (docs/SPEED.md)",
    ("grid", "fmnist_grid_resnet18"): "ten ResNet-18 cells at paper scale, for a GPU (test_configs.py trains one "
                                      "step of its config)",
    ("label_issues_benchmark", ""): "cleanlab, which only the [benchmark] extra installs",
}

#: What the tiny budget appends, per script.
TINY_TRAINING = ("--config.train.epochs=1", "--config.data.train_size=128", "--config.data.test_size=128",
                 "--config.train.batch_size=64", "--config.train.eval_batch_size=128",
                 "--config.estimate.epochs=1", "--config.train.verbose=0")
TINY = {
    "train": TINY_TRAINING,
    # The two methods the README's paired command compares, one seed (and one rate, below).
    "grid": TINY_TRAINING + ("--config.grid.seeds=(0,)", "--config.grid.methods=('coteaching','causalnl')",
                             "--config.grid.auto_methods=()"),
    "tune": TINY_TRAINING + ("--max_trials=1",),
    "estimate_benchmark": TINY_TRAINING + ("--seeds=0",),
    "moons": ("--config.train.epochs=1", "--config.moons.seeds=(0,)", "--config.moons.train_size=64",
              "--config.moons.test_size=64"),
    # The small CNN alone: a ResNet-18 contender takes minutes to build and trace.
    "benchmark": ("--steps=2", "--repeats=1", "--classifiers=small_cnn"),
}

#: What a run writes (from the documents): (the flag that names the folder, paths under it).
WRITES = {
    "train": ("workdir", ["config.json", "noise.json", "noisy_labels.npy", "metrics.csv", "model.keras",
                          "results.json", "pictures/training_curves.png"]),
    "pictures": ("workdir", ["pictures/training_curves.png", "pictures/confusion_matrix.png",
                             "pictures/transition.png"]),
    "grid": ("workdir", ["results.csv", "results.md", "accuracy_vs_noise.png"]),
    "estimate_benchmark": ("workdir", ["results.md"]),
    "label_issues": ("workdir", ["label_issues.csv"]),
    "moons": ("out", ["moons.png"]),
    "tune": ("workdir", ["trials.csv", "best_config.py"]),
    "export": ("base_dir", ["causalnl/1/saved_model.pb"]),
}
#: Flags that name a directory or file a command writes (an alias of its kind's run when it does not run).
_OUTPUTS = ("workdir", "out", "base_dir", "trace", "output")
#: Flags a run drops: the tiny grid trains its cells in one process.
_DROPPED = ("num_shards", "shard")
#: Inputs the documents assume a reader has: a .npy of images and a folder of photos.
INPUT_IMAGES = 6


def not_run_reason(command: doc_commands.Command) -> str | None:
    text = " ".join((*command.env, *command.args))
    for (script, piece), reason in NOT_RUN.items():
        if command.script == script and piece in text:
            return reason
    return None


def script_flags(script: str) -> set:
    """The flags a script defines, read from its source."""
    source = (ROOT / "scripts" / f"{script}.py").read_text()
    return set(re.findall(r"(?:config_)?flags\.(?:DEFINE_)?\w+\(\s*\"(\w+)\"", source))


def _config_argument(command):
    value = command.flag("config")
    return value if isinstance(value, str) else None


def kind(command: doc_commands.Command) -> tuple:
    """Commands of one kind exercise the same code: the first of each runs.

    A kind is a script (a grid's `--report_only` is a kind of its own): the
    configs' own training is `test_configs.py`'s, one step of each.
    """
    return command.script, bool(command.flag("report_only"))


def parse_config(command: doc_commands.Command, cwd: pathlib.Path):
    """The config the script would train: its own config flag, parsed with the command's overrides."""
    words, it = ["doc_command"], iter(command.args)
    for arg in it:
        if arg == "--config":  # `--config path` as two words: the flag's value is the next one
            words.append(f"--config={next(it)}")
        elif arg.startswith("--config"):
            words.append(arg)
    values = flags.FlagValues()  # the overrides become flags of their own, found in the argv
    config_flags.DEFINE_config_file("config", None, flag_values=values, sys_argv=words)
    previous = pathlib.Path.cwd()
    os.chdir(cwd)  # the config's path is relative to where the command runs
    try:
        values(words)
        return values.config
    finally:
        os.chdir(previous)


def check_without_running(command: doc_commands.Command, cwd: pathlib.Path) -> None:
    unknown = set(command.flag_names()) - {"config"} - script_flags(command.script)
    unknown = {name for name in unknown if not name.startswith("config.")}
    assert not unknown, f"{command.name}: {command.script}.py has no flag {sorted(unknown)}"
    config_path = _config_argument(command)
    if config_path is None or not (cwd / config_path.split(":")[0]).exists():
        return  # no config, or one an earlier command writes (checked where that runs)
    config = parse_config(command, cwd)
    if command.script == "tune":
        tuning_config.check_tune_config(config)
    elif command.script in ("train", "grid"):
        config_checks.check_config(config)


@dataclasses.dataclass
class Outcome:
    """A command's run, or its check when an earlier command of its kind ran (`error` if it failed)."""

    ran: bool
    returncode: int = 0
    output: str = ""
    argv: tuple = ()
    error: str = ""
    seconds: float = 0.0
    ran_as: doc_commands.Command | None = None  # with the paths it read and wrote in place of the documented ones


def _rewrite(args, aliases):
    """The command's arguments with the paths of commands that did not run mapped to their kind's run."""
    out = []
    for arg in args:
        for alias, target in aliases.items():
            if arg == alias or arg.startswith(alias + "="):
                arg = target + arg[len(alias):]
            elif "=" in arg and arg.split("=", 1)[1] == alias:
                arg = arg.split("=", 1)[0] + "=" + target
        out.append(arg)
    return out


def _one_noise(command, cwd):
    """The override that leaves the grid the command trains one noise: its last case, or its last rate."""
    section = parse_config(command, cwd).grid
    if section.get("cases"):
        return f"--config.grid.cases=({section.cases[-1]!r},)"
    return f"--config.grid.noise_rates=({section.noise_rates[-1]},)"


def _drop(args, names):
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg[2:].split("=", 1)[0] if arg.startswith("--") else None
        if name in names:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _make_inputs(cwd: pathlib.Path) -> None:
    """What the documents assume the reader has: images.npy and a folder photos/."""
    import tensorflow as tf  # noqa: PLC0415

    images = np.random.default_rng(0).integers(0, 256, size=(INPUT_IMAGES, 28, 28, 1), dtype=np.uint8)
    np.save(cwd / "images.npy", images)
    (cwd / "photos").mkdir()
    for i, image in enumerate(images):
        (cwd / "photos" / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())


def _run_all(cwd: pathlib.Path):
    """Runs (or checks) every documented command in order, in `cwd`: (cwd, {command name: Outcome})."""
    cwd.mkdir()
    for name in ("scripts", "configs"):
        (cwd / name).symlink_to(ROOT / name)
    _make_inputs(cwd)
    seen, aliases, results = {}, {}, {}
    for command in COMMANDS:
        if not_run_reason(command):
            continue
        key = kind(command)
        if key in seen:
            try:
                check_without_running(command, cwd)
            except Exception as error:  # noqa: BLE001  (each command's problem is reported, the rest go on)
                results[command.name] = Outcome(ran=False, error=f"{type(error).__name__}: {error}")
                continue
            for name in _OUTPUTS:
                value = command.flag(name)
                if isinstance(value, str) and value != seen[key].flag(name):
                    aliases[value] = seen[key].flag(name)
            results[command.name] = Outcome(ran=False)
            continue
        seen[key] = command
        args = _drop(_rewrite(command.args, aliases), _DROPPED)
        if command.script not in ("train", "grid", "tune") or _config_argument(command):  # not --report_only
            args += TINY.get(command.script, ())
        if command.script in ("grid", "estimate_benchmark") and _config_argument(command):
            args.append(_one_noise(command, cwd))
        argv = (sys.executable, f"scripts/{command.script}.py", *args)
        env = dict(var.split("=", 1) for var in command.env)
        start = time.perf_counter()
        process = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env})
        results[command.name] = Outcome(True, process.returncode, process.stdout + process.stderr, argv,
                                        seconds=time.perf_counter() - start,
                                        ran_as=dataclasses.replace(command, args=tuple(args)))
    print("\n".join(f"{name}: {o.seconds:.1f} s" for name, o in results.items() if o.ran))  # with -s
    return cwd, results


def test_the_documents_show_commands_and_every_script_is_reached():
    assert len(COMMANDS) > 20
    shown = {c.script for c in COMMANDS}
    scripts = {p.stem for p in (ROOT / "scripts").glob("*.py")} - {"tf_env"}
    # Scripts no document shows: say so here, so that a new one is a decision.
    assert scripts - shown == {"transition_diagnostics"}


@pytest.mark.parametrize("text, problem", [
    ("python scripts/grid.py --config configs/fmnist_grid_cpu.py --workdr runs/x", r"grid.py has no flag \['workdr'\]"),
    ("python scripts/train.py --config configs/fmnist_idn45_cpu.py --workdir r --config.model.pull=some",
     r"Unknown generative pull 'some'"),
    ("python scripts/train.py --config configs/fmnist_idn45_cpu.py --workdir r --config.model.zdim=4", r"zdim"),
    ("python scripts/grid.py --config configs/fmnist_ablation_cpu.py:no_such_variant --workdir r", r"no_such_variant"),
])
def test_a_command_that_is_only_checked_can_still_fail(text, problem):
    (command,) = doc_commands.commands_of("doc.md", f"```bash\n{text}\n```\n")
    with pytest.raises(Exception, match=problem):
        check_without_running(command, ROOT)


def test_the_reasons_for_not_running_are_each_used():
    for (script, piece), _ in NOT_RUN.items():
        assert any(c.script == script and piece in " ".join((*c.env, *c.args)) for c in COMMANDS), (script, piece)


def test_every_documented_command_runs_or_is_checked(tmp_path):
    """One test, so that one process runs the commands in reading order (they read each
    other's outputs); every failing command is listed."""
    cwd, results = _run_all(tmp_path / "reader")
    failures = [problem for command in COMMANDS if not not_run_reason(command)
                for problem in _problems(command, results[command.name], cwd)]
    assert not failures, "\n\n".join(failures)


def _problems(command: doc_commands.Command, outcome: Outcome, cwd: pathlib.Path) -> list:
    """What is wrong with one command's run or check, as messages (none: it is fine)."""
    if not outcome.ran:  # checked without running
        return [f"{command.name}: {outcome.error}"] if outcome.error else []
    if outcome.returncode != 0:
        return [f"{command.name} exited {outcome.returncode}: {' '.join(outcome.argv)}\n{outcome.output[-3000:]}"]
    problems = []
    if command.script in WRITES:
        flag, paths = WRITES[command.script]
        folder = cwd / outcome.ran_as.flag(flag)
        missing = [p for p in paths if not (folder / p).exists()]
        if missing:
            problems.append(f"{command.name} did not write {missing} in {folder}")
    if command.script == "predict":
        rows = (cwd / outcome.ran_as.flag("output")).read_text().splitlines()
        if len(rows) != 1 + INPUT_IMAGES:
            problems.append(f"{command.name} wrote {len(rows)} lines for {INPUT_IMAGES} images: {rows[:3]}")
    if command.script == "paired" and "| A − B |" not in outcome.output:
        problems.append(f"{command.name} printed no paired table: {outcome.output[-2000:]}")
    return problems
