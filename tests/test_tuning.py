"""The keras-tuner search on noisy labels alone (tf_causalnl.tuning, scripts/tune.py).

Searches run on 4-d vectors with MLP networks, eagerly (tracing costs more
than a trial's two steps), in-process; the distributed test runs a chief and
a worker as processes on localhost.
"""

import contextlib
import importlib.util
import io
import json
import os
import pathlib
import socket
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import data, noise, training
from tf_causalnl.config import tune_section
from tf_causalnl.experiments import tuning, tuning_config, tuning_report
from tf_causalnl.training import config_checks

import tune_job as job  # tests/ has no __init__.py: pytest's prepend import mode puts it on sys.path

ROOT = pathlib.Path(__file__).resolve().parents[1]

COLUMNS = ["trial_id", "status", "beta0", "beta1", "beta2", "beta3", "z_dim", "learning_rate",
           "forget_rate", tuning_config.OBJECTIVE, tuning_config.CLEAN, "seconds"]


pytestmark = [
    pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:keras_tuner"),  # its threading calls
]


@pytest.fixture(autouse=True)
def tiny_data(monkeypatch):
    monkeypatch.setitem(data.LOADERS, job.NAME, job.load_tiny_vectors)


@pytest.fixture
def eager():
    """Trials of two steps run faster untraced than traced."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    """A finished search of two trials: (work directory, what `tune` returned, its output)."""
    workdir = tmp_path_factory.mktemp("tuning") / "search"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(data.LOADERS, job.NAME, job.load_tiny_vectors)
        tf.config.run_functions_eagerly(True)
        try:
            with _captured() as output:
                summary = tuning.tune(job.config(max_trials=2), str(workdir))
        finally:
            tf.config.run_functions_eagerly(False)
    return workdir, summary, output.getvalue()


@contextlib.contextmanager
def _captured():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def _read_csv(path):
    lines = pathlib.Path(path).read_text().splitlines()
    return lines[0].split(","), [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]


def _tuning_data():
    return tuning.TuningData(*(np.zeros((4, 4), "float32"), np.zeros(4, int)) * 3, (4,), 2)


def test_the_space_comes_from_the_config():
    config = job.config()
    config.tune.space.beta2 = None  # not searched: the config's value stays
    hp = keras_tuner.HyperParameters()
    values = tuning.CausalNLHyperModel(config, _tuning_data()).declare(hp)
    assert list(values) == ["beta0", "beta1", "beta3", "z_dim", "learning_rate", "forget_rate"]
    space = {p.name: p for p in hp.space}
    for name, low, high in (("beta0", 0.01, 1.0), ("beta3", 0.064, 6.4), ("learning_rate", 1e-4, 1e-2),
                            ("z_dim", 1, 4)):
        assert (space[name].min_value, space[name].max_value, space[name].sampling) == (low, high, "log")
    assert space["forget_rate"].values == ["0.1", "0.2"]
    # The trial's values land in the training config, which has no tune section.
    trained = tuning_config.trial_config(config, {**values, "forget_rate": "auto", "tuner/epochs": 2})
    assert "tune" not in trained and trained.model.forget_rate == "auto"
    assert (trained.model.beta0, trained.model.z_dim) == (values["beta0"], values["z_dim"])
    assert trained.model.beta2 == config.model.beta2
    assert tuning_config.trial_config(config, {"forget_rate": "0.2"}).model.forget_rate == 0.2


@pytest.mark.parametrize("key, value, message", [
    ("tune.algoritm", "random", r"Unknown config key tune.algoritm; the valid keys .*algorithm"),
    ("tune.space.beta4", (1.0, 2.0), r"Unknown config key tune.space.beta4; .*beta0, beta1"),
    ("tune.algorithm", "grid", r"Unknown tuning algorithm 'grid'; choose one of \['bayesian', 'hyperband'"),
    ("tune.space.beta0", (1.0, 0.1), r"tune.space.beta0 must be \(low, high\) with 0 < low <= high"),
    ("tune.space.z_dim", (0.5, 4.0), r"tune.space.z_dim must be whole numbers"),
    ("tune.space.forget_rate", (0.2, 1.5), r"tune.space.forget_rate"),
    ("tune.validation_fraction", 1.0, r"tune.validation_fraction must be a number in \(0, 1\)"),
    ("model.z_dim", 0, r"model.z_dim must be a whole number of at least 1"),
])
def test_bad_search_configs_are_refused(key, value, message):
    config = job.config()
    *sections, name = key.split(".")
    section = config
    for part in sections:
        section = section[part]
    setattr(section, name, value)
    with pytest.raises(ValueError, match=message):
        tuning_config.check_tune_config(config)


@pytest.mark.parametrize("algorithm", sorted(tuning.TUNERS))
def test_each_algorithm_builds_with_the_noisy_objective(algorithm, tmp_path, eager):
    config = job.config(algorithm)
    hypermodel = tuning.CausalNLHyperModel(config, tuning.load_tuning_data(config, str(tmp_path)))
    tuner = tuning.make_tuner(config, hypermodel, str(tmp_path), max_trials=3)
    assert isinstance(tuner, tuning.TUNERS[algorithm])
    assert (tuner.oracle.objective.name, tuner.oracle.objective.direction) == (tuning_config.OBJECTIVE, "max")
    assert tuner.oracle.max_trials == 3
    model = hypermodel.build(tuner.oracle.get_space())
    assert isinstance(model, training.METHODS["causalnl"])


def test_the_noisy_split_never_touches_clean_labels(tmp_path, monkeypatch):
    # The split is a function of the noisy labels, the fraction and the seed alone.
    noisy = np.arange(100) % 3
    train_idx, val_idx = tuning_config.noisy_validation_split(noisy, 0.2, seed=0)
    assert len(val_idx) == 20 and len(train_idx) == 80
    assert sorted({*train_idx, *val_idx}) == list(range(100))
    assert np.array_equal(val_idx, tuning_config.noisy_validation_split(noisy, 0.2, seed=0)[1])
    assert not np.array_equal(val_idx, tuning_config.noisy_validation_split(noisy, 0.2, seed=1)[1])

    # With the same noisy labels, other clean training labels change nothing the trials see.
    fixed = job.load_tiny_vectors().y_train ^ (np.arange(96) % 5 == 0)
    monkeypatch.setattr(noise, "make_noisy_labels", lambda *args, **kwargs: fixed.copy())
    seen = []
    for flip in (False, True):
        def loader(data_dir=None, flip=flip):
            d = job.load_tiny_vectors()
            return data.from_arrays(d.x_train, 1 - d.y_train if flip else d.y_train, d.x_test, d.y_test,
                                    num_classes=2, name=job.NAME)
        monkeypatch.setitem(data.LOADERS, job.NAME, loader)
        seen.append(tuning.load_tuning_data(job.config(), str(tmp_path / str(flip))))
    for name in ("x_train", "noisy_train", "x_val", "noisy_val"):
        assert np.array_equal(getattr(seen[0], name), getattr(seen[1], name)), name
    assert len(seen[0].noisy_val) == 24  # validation_fraction 0.25 of 96
    assert np.array_equal(seen[0].noisy_val, fixed[tuning_config.noisy_validation_split(fixed, 0.25, 0)[1]])


def test_the_best_config_trains_unchanged(search, tmp_path, eager):
    workdir, summary, _ = search
    path = workdir / "best_config.py"
    assert summary["best_config"] == str(path)
    spec = importlib.util.spec_from_file_location("best_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # what `--config best_config.py` does
    config = module.get_config()
    expected = tuning_config.trial_config(job.config(), summary["best_values"])
    assert config.to_dict() == expected.to_dict() and "tune" not in config
    config_checks.check_config(config)
    results = training.train(config, str(tmp_path / "run"))
    assert results["epochs"] == 1 and 0.0 <= results["clean_test_accuracy_last"] <= 1.0


def test_search_writes_trials_and_resumes(search, eager, capsys):
    workdir, summary, output = search
    assert output.count("| val_noisy_accuracy ") == 2 and "trial 0 (COMPLETED) | beta0=" in output
    header, rows = _read_csv(workdir / "trials.csv")
    assert header == COLUMNS
    assert [row["status"] for row in rows] == ["COMPLETED"] * 2
    for row in rows:
        assert 0.0 <= float(row[tuning_config.OBJECTIVE]) <= 1.0 and 0.0 <= float(row[tuning_config.CLEAN]) <= 1.0
    assert summary["trials"] == 2 and summary["best_trial"] in ("0", "1")
    assert summary[tuning_config.OBJECTIVE] == max(float(row[tuning_config.OBJECTIVE]) for row in rows)

    # The same command with a budget of 3 runs one trial more, keeping the first two.
    summary = tuning.tune(job.config(max_trials=2), str(workdir), max_trials=3)
    assert capsys.readouterr().out.count("| val_noisy_accuracy ") == 1
    _, resumed = _read_csv(workdir / "trials.csv")
    assert resumed[:2] == rows and len(resumed) == 3 and summary["trials"] == 3

    # A search of another config is refused, before anything is loaded.
    other = job.config()
    other.noise.rate = 0.3
    with pytest.raises(ValueError, match=r"holds a search of a different config \(it differs in noise.rate"):
        tuning.tune(other, str(workdir))


def test_a_search_with_auto_in_its_space_runs_to_its_best_config(tmp_path, eager):
    # The shipped CPU search holds "auto" among its forget-rate choices; such a
    # search estimates the noise once, from the training part's noisy labels.
    config = job.config(max_trials=1)
    config.tune.space.forget_rate = ("auto",)
    config.estimate.epochs = 1
    workdir = tmp_path / "search"
    with _captured():
        summary = tuning.tune(config, str(workdir))
    assert summary["trials"] == 1 and summary["best_values"]["forget_rate"] == "auto"
    _, rows = _read_csv(workdir / "trials.csv")
    assert [row["forget_rate"] for row in rows] == ["auto"]
    saved = json.loads((workdir / "noise_estimate.json").read_text())["estimate"]
    tuning_data = tuning.load_tuning_data(config, str(tmp_path / "again"))
    # Estimated from the 72 training-part labels, not the 96 of the whole set.
    counts = np.bincount(tuning_data.noisy_train, minlength=2)
    assert counts.sum() == 72
    assert saved["noisy_prior"] == pytest.approx(counts / 72)
    spec = importlib.util.spec_from_file_location("best_config", workdir / "best_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.get_config().model.forget_rate == "auto"


def test_correlations_of_the_objective_and_clean_accuracy():
    rows = [{tuning_config.OBJECTIVE: "0.1", tuning_config.CLEAN: "0.2"}, {tuning_config.OBJECTIVE: 0.2, tuning_config.CLEAN: 0.4},
            {tuning_config.OBJECTIVE: 0.3, tuning_config.CLEAN: 0.5}, {tuning_config.OBJECTIVE: 0.4, tuning_config.CLEAN: ""}]
    result = tuning_report.correlations(rows)  # the last row has no clean accuracy: left out
    assert result["trials"] == 3 and result["spearman"] == pytest.approx(1.0)
    assert result["pearson"] == pytest.approx(0.03 / np.sqrt(0.02 * 0.14 / 3), rel=1e-6)  # by hand
    assert tuning_report.correlations(rows[:2]) == {}


def test_the_cpu_config_is_a_valid_search():
    spec = importlib.util.spec_from_file_location("tune_cpu", ROOT / "configs" / "tune_fmnist_idn45_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    tuning_config.check_tune_config(config)
    assert "python scripts/tune.py --config configs/tune_fmnist_idn45_cpu.py" in module.__doc__
    assert config.tune.space.to_dict() == tune_section().space.to_dict()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_chief_and_a_worker_tune_together(tmp_path):
    workdir = tmp_path / "search"
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(_free_port()),
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "tests" / "tune_job.py"), str(workdir), "--max_trials=1", "--eager"]
    processes = {tuner_id: subprocess.Popen(command, env={**env, "KERASTUNER_TUNER_ID": tuner_id},
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for tuner_id in ("chief", "worker0")}
    outputs = {}
    try:
        for tuner_id, process in processes.items():
            outputs[tuner_id] = process.communicate(timeout=240)[0]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for tuner_id, process in processes.items():
        assert process.returncode == 0, f"{tuner_id}:\n{outputs.get(tuner_id, '')[-3000:]}"
    # The worker ran the trial; the chief's oracle recorded it and wrote the results.
    assert "trial 0 (COMPLETED)" in outputs["worker0"] and "trial 0" not in outputs["chief"]
    chief = json.loads((workdir / "result-chief.json").read_text())
    assert chief["trials"] == 1 and chief["best_trial"] == "0"
    assert json.loads((workdir / "result-worker0.json").read_text()) == {}
    _, rows = _read_csv(workdir / "trials.csv")
    assert [row["status"] for row in rows] == ["COMPLETED"]
    trial = json.loads((workdir / "search" / "trial_0" / "trial.json").read_text())
    assert trial["status"] == "COMPLETED" and trial["metrics"]["metrics"][tuning_config.OBJECTIVE]
