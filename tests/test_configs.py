"""Every experiment in configs/ builds its data pipeline and model and trains one step.

The config files are found by glob, so a new one is tested without being
listed here. A step keeps the config's dataset, image size, classifier,
method, z_dim and VAE depth and shrinks the rest to one batch of tiny data:
mock TFDS data, a generated Clothing1M folder, or four real FashionMNIST
images. It runs the library's own steps of `training.train` (the config
checks, `prepare_inputs`, `build_model` in the config's strategy, `fit`, its
step run eagerly: see the `eager` fixture in tests/conftest.py), not the
rest of `train` (callbacks, saving the models, pictures): saving two
ResNet-50s three times cost more than their training step, and that part of
`train` is the same for every config, tested end to end in
tests/test_training.py. The training steps come last: the quick checks of
the configs come first, while the process is small (each test's
`clear_session` grows slow after the big models).
"""

import importlib.util
import inspect
import json
import os
import pathlib
import re

import numpy as np
import pytest

from tf_causalnl import data, training
from tf_causalnl.config import GRID, base_config, cpu_protocol
from tf_causalnl.data import clothing1m
from tf_causalnl.experiments import grid_cells
from tf_causalnl.training import config_checks, distribute

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((ROOT / "configs").glob("*.py"))
BATCH = 4
#: What a shrunk run must keep from the config.
KEPT = (("data", "name"), ("data", "image_size"), ("data", "resize"), ("model", "method"),
        ("model", "classifier"), ("model", "z_dim"), ("model", "vae_depth"), ("model", "resnet_stem"),
        ("noise", "type"))
#: Configs run by a script of their own rather than train.py, grid.py or
#: tune.py, by script name: the test file that runs them.
TESTED_ELSEWHERE = {"moons": "tests/test_moons.py"}
#: Config files whose CausalNL run is another file's, as a test below checks:
#: that file's one-step run covers both.
SAME_RUN_AS = {"fmnist_grid_resnet18.py": "fmnist_resnet18.py"}
HAS_FASHION_MNIST = os.path.exists(
    os.path.join(data.DEFAULT_FASHION_MNIST_DIR, data.FASHION_MNIST_FILES["x_train"]))


def _module(path):
    spec = importlib.util.spec_from_file_location(f"configs.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(path, argument=None):
    """What `--config path[:argument]` gives scripts/train.py and scripts/grid.py."""
    module = _module(path)
    return module.get_config() if argument is None else module.get_config(argument)


def script_of(path):
    """The script of the command in the config file's docstring (big_vision style)."""
    doc = _module(path).__doc__ or ""
    match = re.search(rf"python scripts/(\w+)\.py --config configs/{re.escape(path.name)}\b", doc)
    assert match, f"{path.name}'s docstring gives no `python scripts/... --config configs/{path.name}` command"
    return match.group(1)


def _takes_argument(path):
    return bool(inspect.signature(_module(path).get_config).parameters)


#: Config files whose argument names an ablation variant (tested below), not a noise rate.
ABLATION_FILES = [ROOT / "configs" / "fmnist_ablation_cpu.py"]
#: Grids of a few methods and rates on a longer protocol (tested below), not the paper's Table 1.
FOCUSED_FILES = [ROOT / "configs" / "fmnist_long_cpu.py", ROOT / "configs" / "fmnist_dividemix_cpu.py",
                 ROOT / "configs" / "fmnist_dividemix_long_cpu.py", ROOT / "configs" / "fmnist_pull_cpu.py",
                 ROOT / "configs" / "fmnist_spectrum_cpu.py"]
VARIANT_FILES = [p for p in CONFIG_FILES if _takes_argument(p) and p not in ABLATION_FILES]
GRID_CONFIGS = [(p, None) for p in CONFIG_FILES
                if "grid" in load_config(p) and p not in ABLATION_FILES + FOCUSED_FILES] + [
    (p, GRID) for p in VARIANT_FILES]


def measured_protocol():
    """The CPU protocol as the configs of committed results pin it: Algorithm 1's pull."""
    config = cpu_protocol()
    config.model.pull = "all"
    return config


def _name(value):
    return value.name if isinstance(value, pathlib.Path) else str(value)


def _get(config, key):
    section, name = key
    return config[section][name]


def shrink(config, tmp_path, make_clothing1m):
    """The config sized for one training step on tiny data; the model and image size are kept."""
    config = config.copy_and_resolve_references()
    config.train.epochs = 1
    config.train.batch_size = BATCH
    config.train.eval_batch_size = BATCH
    config.train.verbose = 0
    config.estimate.epochs = 1
    config.data.test_size = BATCH
    if config.data.name == "fashion_mnist":
        config.data.train_size = BATCH
    elif config.data.name == clothing1m.NAME:
        # Small JPEGs, resized and cropped to the config's image size as the real ones are.
        root, _ = make_clothing1m(n_train=BATCH, n_test=BATCH, size=48)
        config.data.data_dir = str(root)
        config.model.pretrained = ""  # nothing to download
    else:  # TFDS, mocked with BATCH examples per split
        config.data.data_dir = str(tmp_path / "tfds")
    return config


def train_one_step(config, workdir):
    """What `training.train` does up to the end of `fit`, on one batch, under mock TFDS data.

    Returns (the model, its inputs, the last value of each logged metric).
    """
    import tensorflow_datasets as tfds  # Lazy, as in tests/test_data.py: importing TFDS is slow.

    if config.data.name == "fashion_mnist" and not HAS_FASHION_MNIST:
        pytest.skip("needs the FashionMNIST files: apt-get install dataset-fashion-mnist")
    config_checks.check_config(config)
    with tfds.testing.mock_data(num_examples=BATCH):
        inputs = training.prepare_inputs(config, str(workdir))
    with distribute.make_strategy(config.train.strategy).scope():
        model = training.build_model(config, inputs.input_shape, inputs.num_classes, inputs.estimate)
    history = model.fit(inputs.train(0), steps_per_epoch=inputs.steps_per_epoch, epochs=1,
                        validation_data=inputs.test, verbose=0, shuffle=False)
    return model, inputs, {name: values[-1] for name, values in history.history.items()}


@pytest.mark.parametrize("path, argument", GRID_CONFIGS, ids=_name)
def test_grid_configs_hold_the_papers_grid(path, argument):
    config = load_config(path, argument)
    # Table 1 of the paper, its rows in its order, and its columns.
    assert config.grid.methods == ("ce", "coteaching", "decoupling", "mentornet", "mixup",
                                   "forward", "reweight", "trevision", "causalnl")
    assert config.grid.noise_types == ("idn",)
    assert config.grid.noise_rates == (0.2, 0.3, 0.4, 0.45, 0.5)
    assert config.grid.auto_methods == ("causalnl",)  # ours: CausalNL with the estimated rate too
    assert len(grid_cells.cells(config)) == 10 * 5 * len(config.grid.seeds)
    if "cpu" not in path.stem:  # the paper's protocol: 5 seeds, so 250 runs
        assert config.grid.seeds == (0, 1, 2, 3, 4) and len(grid_cells.cells(config)) == 250


@pytest.mark.parametrize("path", VARIANT_FILES, ids=_name)
def test_the_argument_picks_a_noise_rate_or_the_grid(path):
    default = load_config(path)
    assert default.noise.rate == default.model.forget_rate == 0.45
    assert load_config(path, "").to_dict() == default.to_dict()
    at_30 = load_config(path, "0.3")
    assert at_30.noise.rate == at_30.model.forget_rate == 0.3
    at_30.noise.rate = at_30.model.forget_rate = 0.45
    assert at_30.to_dict() == default.to_dict()

    # Each cell of the grid trains the default config at its own method, rate and seed.
    grid_config = load_config(path, GRID)
    cell = grid_cells.Cell("causalnl", grid_cells.ORACLE, "idn", 0.45, 0)
    trained = grid_cells.cell_config(grid_config, cell)
    assert trained.train.verbose == 2
    trained.train.verbose = default.train.verbose
    assert trained.to_dict() == default.to_dict()

    for bad in ("45", "0.3x", "grids"):
        with pytest.raises(ValueError, match=rf"Unknown config argument '{bad}': .*rate in \[0, 1\)"):
            load_config(path, bad)


@pytest.mark.parametrize("alias, original", SAME_RUN_AS.items())
def test_files_with_the_same_run_agree(alias, original):
    # The alias's grid is the original's (the original's default config being
    # its CausalNL cell at IDN-45%, seed 0; see the argument test above).
    alias = load_config(ROOT / "configs" / alias)
    assert alias.to_dict() == load_config(ROOT / "configs" / original, GRID).to_dict()


@pytest.mark.parametrize("path", CONFIG_FILES, ids=_name)
def test_every_config_states_its_command(path):
    script = script_of(path)
    if script not in TESTED_ELSEWHERE:
        config = load_config(path)
        assert script == ("grid" if "grid" in config else "tune" if "tune" in config else "train")
    if path in VARIANT_FILES:
        assert f"configs/{path.name}:0.3" in _module(path).__doc__
        assert f"python scripts/grid.py --config configs/{path.name}:{GRID}" in _module(path).__doc__


def test_the_long_protocol_is_the_cpu_protocol_trained_longer():
    config = load_config(FOCUSED_FILES[0])
    protocol = measured_protocol()
    assert (config.train.epochs, config.model.ramp_epochs) == (40, 10)
    config.train.epochs, config.model.ramp_epochs = protocol.train.epochs, protocol.model.ramp_epochs
    grid_section = config.grid
    del config.grid
    assert config.to_dict() == protocol.to_dict()
    assert (grid_section.methods, grid_section.auto_methods, grid_section.noise_rates) == (
        ("ce", "coteaching", "causalnl"), (), (0.45, 0.5))
    assert len(grid_cells.cells(load_config(FOCUSED_FILES[0]))) == 3 * 2 * len(grid_section.seeds)


def test_the_dividemix_grid_is_the_cpu_protocol_with_dividemix_shrunk_to_it():
    config = load_config(FOCUSED_FILES[1])
    protocol = measured_protocol()
    assert (config.model.warmup_epochs, config.model.rampup_epochs, config.model.lambda_u) == (2, 5, 25.0)
    grid_section = config.grid
    del config.grid
    for key in ("warmup_epochs", "rampup_epochs", "lambda_u"):
        config.model[key] = protocol.model[key]
    assert config.to_dict() == protocol.to_dict()
    assert (grid_section.methods, grid_section.noise_rates, grid_section.seeds) == (
        ("ce", "coteaching", "causalnl", "dividemix", "instancegm"), (0.45, 0.5), (0, 1, 2))
    assert len(grid_cells.cells(load_config(FOCUSED_FILES[1]))) == 5 * 2 * 3


def test_the_long_dividemix_run_is_the_long_protocol_with_a_longer_warm_up():
    config = load_config(FOCUSED_FILES[2])
    long_protocol = load_config(FOCUSED_FILES[0])
    assert (config.model.warmup_epochs, config.model.rampup_epochs, config.model.lambda_u) == (5, 10, 25.0)
    grid_section = config.grid
    del config.grid, long_protocol.grid
    for key in ("warmup_epochs", "rampup_epochs", "lambda_u"):
        config.model[key] = long_protocol.model[key]
    assert config.to_dict() == long_protocol.to_dict()
    assert (grid_section.methods, grid_section.noise_rates, grid_section.seeds) == (
        ("coteaching", "dividemix", "instancegm"), (0.5,), (0, 1, 2))
    assert len(grid_cells.cells(load_config(FOCUSED_FILES[2]))) == 3 * 3


def test_the_pull_comparison_is_the_cpu_protocol_on_clean_and_two_idn_rates():
    config = load_config(FOCUSED_FILES[3])
    grid_section = config.grid
    del config.grid
    assert config.to_dict() == measured_protocol().to_dict()  # the other arms set the pull on the command line
    assert (grid_section.methods, grid_section.auto_methods, grid_section.noise_types, grid_section.noise_rates,
            grid_section.seeds) == (("ce", "coteaching", "causalnl"), (), ("idn",), (0.0, 0.2, 0.45), (0, 1, 2))


def test_the_spectrum_is_the_cpu_protocol_with_the_library_defaults_over_every_kind_of_noise():
    config = load_config(FOCUSED_FILES[4])
    grid_section = config.grid
    del config.grid
    assert config.to_dict() == cpu_protocol().to_dict() and config.model.pull == "noise"  # the default
    assert (grid_section.methods, grid_section.auto_methods, grid_section.seeds) == (
        ("ce", "coteaching", "trevision", "causalnl"), ("causalnl",), (0, 1, 2))
    assert grid_cells.noise_cases(load_config(FOCUSED_FILES[4])) == [
        ("idn", 0.0), ("idn", 0.1), ("idn", 0.2), ("idn", 0.3), ("idn", 0.4), ("idn", 0.45), ("idn", 0.5),
        ("symmetric", 0.2), ("symmetric", 0.4), ("pairflip", 0.2), ("pairflip", 0.45)]
    assert len(grid_cells.cells(load_config(FOCUSED_FILES[4]))) == 5 * 11 * 3


def test_every_config_of_committed_results_pins_the_pull_it_was_measured_with():
    for path in CONFIG_FILES:
        config = load_config(path)
        if path.stem not in ("fmnist_spectrum_cpu", "cifar10_instancegm") and "model" in config:
            assert config.model.pull == "all", path.name


@pytest.mark.parametrize("path", ABLATION_FILES, ids=_name)
def test_each_ablation_variant_changes_only_its_own_keys(path):
    module = _module(path)
    default = load_config(path)
    assert default.to_dict() == load_config(path, "default").to_dict()
    assert (default.grid.methods, default.grid.noise_rates, default.grid.seeds) == (("causalnl",), (0.5,), (0, 1, 2))
    assert default.model.to_dict() == load_config(ROOT / "configs" / "fmnist_grid_cpu.py").model.to_dict()
    for variant, changes in module.VARIANTS.items():
        config = load_config(path, variant)
        config_checks.check_config(config)
        assert f" {variant} " in module.__doc__ or f" {variant}; " in module.__doc__, variant
        for section in ("data", "model", "noise", "train", "estimate"):
            for key, value in config[section].items():
                expected = changes.get(f"{section}.{key}", default[section][key])
                assert value == expected, (variant, section, key)
    with pytest.raises(ValueError, match="Unknown ablation variant 'x'; choose one of"):
        load_config(path, "x")
    other_rate = load_config(path, "elbo_kl064,0.45")
    assert other_rate.grid.noise_rates == (0.45,) and other_rate.model.beta3 == 0.64


def test_grid_work_directories_from_before_the_new_keys_stay_compatible(tmp_path):
    # Keys added for these experiments default to None, which an older
    # grid_config.json (without them) matches.
    config = load_config(ROOT / "configs" / "fmnist_grid_cpu.py")
    stored = json.loads(json.dumps(config.to_dict()))
    for section, key in (("data", "image_size"), ("data", "resize"), ("model", "vae_depth"),
                         ("model", "pretrained")):
        assert stored[section].pop(key) is None
    (tmp_path / "grid_config.json").write_text(json.dumps(stored))
    grid_cells.check_compatible(config, str(tmp_path))


def test_the_clothing1m_config_is_the_papers():
    config = load_config(ROOT / "configs" / "clothing1m_resnet50.py")
    assert (config.data.name, config.noise.type) == (clothing1m.NAME, "real")
    assert (config.model.classifier, config.model.pretrained) == ("resnet50_imagenet", "imagenet")
    assert (config.model.z_dim, config.model.vae_depth, config.train.epochs) == (100, 5, 40)
    assert (config.data.image_size, config.data.resize) == (224, 256)
    base = base_config()
    assert (config.train.batch_size, config.train.learning_rate) == (base.train.batch_size, 1e-3)


def test_the_instancegm_config_is_the_papers():
    config = load_config(ROOT / "configs" / "cifar10_instancegm.py")
    assert (config.data.name, config.noise.type, config.noise.rate) == ("cifar10", "idn", 0.5)
    assert (config.model.method, config.model.classifier, config.model.resnet_stem) == (
        "instancegm", "resnet18", "cifar")
    assert (config.model.warmup_epochs, config.model.rampup_epochs, config.model.lambda_u) == (10, 16, 25.0)
    assert config.model.warmup_elbo is False  # the paper warms up the classifiers alone
    assert (config.train.epochs, config.train.batch_size) == (300, 64)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=_name)
@pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
def test_every_config_trains_one_step(path, tmp_path, make_clothing1m, no_network, eager):
    if script_of(path) in TESTED_ELSEWHERE:
        pytest.skip(f"run by scripts/{script_of(path)}.py, tested in {TESTED_ELSEWHERE[script_of(path)]}")
    if path.name in SAME_RUN_AS:
        pytest.skip(f"the same run as {SAME_RUN_AS[path.name]}, trained there")
    config = load_config(path)
    if "grid" in config:  # a grid config: one step of its CausalNL cell, else of its last method's
        cells = grid_cells.cells(config)
        cell = next((c for c in cells if c.method == "causalnl"), cells[-1])
        config = grid_cells.cell_config(config, cell)
    small = shrink(config, tmp_path, make_clothing1m)
    for key in KEPT:
        assert _get(small, key) == _get(config, key), key

    model, inputs, logs = train_one_step(small, tmp_path / "run")

    # The configured networks, at the configured image size.
    assert isinstance(model, training.METHODS[config.model.method])
    assert model.classifier.name == config.model.classifier
    assert model.classifier.input_shape[1:] == inputs.input_shape
    if config.data.image_size:
        assert inputs.input_shape == (config.data.image_size, config.data.image_size, 3)
    assert inputs.steps_per_epoch == 1
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["val_accuracy"] <= 1.0
    real_noise = config.noise.type == "real"
    # Clean training labels (and so their diagnostics) exist for synthetic noise only.
    assert ("clean_accuracy" in logs) == (not real_noise)
    assert ("realized_noise_rate" in inputs.results) == (not real_noise)
    assert (tmp_path / "run" / "noisy_labels.npy").exists() == (not real_noise)
