"""Bad input gets a clear error before anything is trained or written (tf_causalnl.checks)."""

import gzip
import importlib.util
import json
import pathlib
import struct

import ml_collections
import numpy as np
import pytest

from tf_causalnl import data, networks, noise, training
from tf_causalnl.config import base_config
from tf_causalnl.experiments import grid, grid_cells
from tf_causalnl.training import checks, config_checks

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config(**changes):
    """A tiny CausalNL run on the "tiny" dataset; `changes` set dotted keys."""
    config = base_config()
    config.data.name = "tiny"
    config.model.classifier = "small_cnn"
    config.model.z_dim = 2
    config.noise.rate = config.model.forget_rate = 0.3
    config.train.epochs = 1
    config.train.batch_size = 16
    config.train.verbose = 0
    for key, value in changes.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def _dataset(x=None, y=None, num_classes=3):
    """64 training and 32 test examples of 8x8 grey images, or `x` / `y` instead."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 8, 8, 1), dtype=np.uint8) if x is None else x
    y = rng.integers(0, num_classes, 96) if y is None else y
    return data.Dataset("tiny", x[:64], y[:64], x[64:], y[64:], num_classes)


@pytest.fixture(autouse=True)
def _tiny_loader(monkeypatch):
    """Registers the "tiny" dataset, as the tests of training do."""
    monkeypatch.setitem(data.LOADERS, "tiny", lambda data_dir=None: _dataset())


def _refused_by_train(monkeypatch, tmp_path, config, dataset=None, error=ValueError, match=""):
    """Runs train on `dataset` as "tiny" and checks it raised before making the work directory."""
    dataset = dataset if dataset is not None else _dataset()
    monkeypatch.setitem(data.LOADERS, "tiny", lambda data_dir=None: dataset)
    workdir = tmp_path / "run"
    with pytest.raises(error, match=match):
        training.train(config, str(workdir))
    assert not workdir.exists()


# 1, 2, 4: labels, counts, non-finite values ------------------------------------

def test_labels_outside_the_classes_are_refused_before_the_work_directory(monkeypatch, tmp_path):
    y = np.zeros(96, int)
    y[70] = 3
    _refused_by_train(monkeypatch, tmp_path, _config(), _dataset(y=y),
                      match=r"Dataset 'tiny': y_test has labels outside \[0, 3\) in 1 of its 32 examples "
                            r"\(the first is example 6, 3\); map the labels to 0..2")


def test_a_label_count_unlike_the_image_count_is_refused(monkeypatch, tmp_path):
    dataset = _dataset()
    dataset.y_train = dataset.y_train[:63]
    _refused_by_train(monkeypatch, tmp_path, _config(), dataset,
                      match="y_train has 63 labels for 64 examples; give one label per example")


def test_non_finite_pixels_are_refused_naming_the_first_example(monkeypatch, tmp_path):
    x = np.full((96, 8, 8, 1), 0.5, np.float32)
    x[5, 2, 3, 0] = np.nan
    x[9, 0, 0, 0] = np.inf
    _refused_by_train(monkeypatch, tmp_path, _config(), _dataset(x=x),
                      match=r"x_train has NaN or infinite values in 2 of its 64 examples "
                            r"\(the first is example 5\); drop those examples")


def test_check_dataset_returns_the_dataset_with_a_channel_axis():
    dataset = _dataset(x=np.zeros((96, 8, 8), np.uint8))
    assert checks.check_dataset(dataset).input_shape == (8, 8, 1)
    with pytest.raises(ValueError, match=r"Dataset 'tiny': x_train has rank 5"):
        checks.check_dataset(_dataset(x=np.zeros((96, 2, 8, 8, 1), np.uint8)))


# 3: shapes the networks cannot read -------------------------------------------------

@pytest.mark.parametrize("shape, classifier, match", [
    ((8, 8), "small_cnn", r"Inputs of shape \(8, 8\) fit no network: .*\(D,\) or images of shape \(H, W, C\)"),
    ((0, 8, 1), "mlp", r"Inputs of shape \(0, 8, 1\) fit no network"),
    ((5,), "small_cnn", r"'small_cnn' is convolutional and takes images of shape \(H, W, C\), but the "
                        r"inputs are vectors of shape \(5,\); use model.classifier='mlp'"),
    ((5,), "resnet18", r"'resnet18' is convolutional"),
    ((28, 28, 1), "resnet50_imagenet", r"takes images of shape \(H, W, 3\) with H and W at least 32, "
                                       r"but the inputs have shape \(28, 28, 1\)"),
    ((64, 64, 1), "resnet50_imagenet", r"\(H, W, 3\).*\(64, 64, 1\)"),
    ((16, 64, 3), "resnet50_imagenet", r"at least 32, but the inputs have shape \(16, 64, 3\)"),
])
def test_shapes_the_networks_cannot_read_are_refused(shape, classifier, match):
    with pytest.raises(ValueError, match=match):
        checks.check_images_for_networks(shape, _config(**{"model.classifier": classifier}))


@pytest.mark.parametrize("shape, classifier", [
    ((8, 8, 1), "small_cnn"), ((1, 1, 3), "resnet18"), ((5,), "mlp"), ((8, 8, 1), "mlp"),
    ((32, 40, 3), "resnet50_imagenet"),
])
def test_shapes_the_networks_read_are_accepted(shape, classifier):
    checks.check_images_for_networks(shape, _config(**{"model.classifier": classifier}))


def test_the_resnet50_rule_is_the_builder_s_own():
    for shape in ((28, 28, 1), (31, 64, 3), (64, 64, 4)):
        with pytest.raises(ValueError, match="resnet50_imagenet"):
            checks.check_images_for_networks(shape, _config(**{"model.classifier": "resnet50_imagenet"}))
        with pytest.raises(ValueError, match="resnet50_imagenet needs RGB images"):
            networks.build_imagenet_resnet50(shape, 3)


@pytest.mark.parametrize("shape, depth", [((1, 1, 1), None), ((7, 9, 2), 4), ((3, 3, 1), 5)])
def test_the_vae_builds_and_reconstructs_any_image_size(shape, depth):
    # Why check_images_for_networks sets no minimum size for CausalNL's VAE.
    encoder = networks.build_latent_encoder(shape, 3, 2, depth, width=2)
    decoder = networks.build_decoder(shape, 3, 2, depth, width=2)
    assert encoder.output_shape[0] == (None, 2)
    assert decoder.output_shape == (None, *shape)


def test_vectors_for_a_convolutional_classifier_are_refused_before_the_work_directory(monkeypatch, tmp_path):
    x = np.random.default_rng(0).random((96, 5)).astype(np.float32)
    _refused_by_train(monkeypatch, tmp_path, _config(), _dataset(x=x),
                      match=r"vectors of shape \(5,\); use model.classifier='mlp'")


# 5, 6, 7: noise, forget rate, z_dim and other ranges -----------------------------------

@pytest.mark.parametrize("changes, match", [
    ({"noise.rate": 45.0}, r"noise.rate must be in \[0, 1\), got 45.0; give a fraction \(0.45\)"),
    ({"noise.rate": 1.0}, r"noise.rate must be in \[0, 1\)"),
    ({"noise.rate": -0.1}, r"noise.rate must be in \[0, 1\)"),
    ({"noise.std": 1.5}, r"noise.std must be in \[0, 1\], got 1.5"),
    ({"noise.type": "idm"}, r"Unknown noise type 'idm'; choose one of \['idn', 'pairflip', 'real', "
                            r"'symmetric'\] for config.noise.type. Did you mean 'idn'\?"),
    ({"model.forget_rate": 1.0}, r'model.forget_rate must be a number in \[0, 1\) or "auto", got 1.0; '
                                 r"give the expected noise rate as a fraction"),
    ({"model.forget_rate": "automatic"}, r"model.forget_rate must be .* got 'automatic'"),
    ({"model.z_dim": 0}, r"model.z_dim must be a whole number of at least 1, got 0; set it with "
                         r"--config.model.z_dim=N \(the default is 25\)"),
    ({"model.vae_depth": 0}, r"model.vae_depth must be a whole number of at least 1 or None"),
    ({"model.vae_width": 0}, r"model.vae_width must be .* at least 1"),
    ({"train.epochs": 0}, r"train.epochs must be .* at least 1"),
    ({"train.batch_size": 0}, r"train.batch_size must be .* at least 1"),
    ({"data.train_size": -5}, r"data.train_size must be .* at least 0"),
    ({"model.temperature": 0.0}, r"model.temperature must be a finite number above 0, got 0.0"),
    ({"train.learning_rate": -1e-3}, r"train.learning_rate must be a finite number above 0"),
    ({"train.strategy": "tpu"}, r"Unknown strategy 'tpu'; choose one of \['default', 'mirrored'"),
    ({"model.classifier": "resnet19"}, r"Unknown classifier 'resnet19'; .*Did you mean 'resnet18'\?"),
    ({"data.name": "fmnist"}, r"Unknown dataset 'fmnist'; choose one of \['cifar10', .*'clothing1m'"),
    ({"noise.type": "real"}, r'noise.type="real" .* labels of tiny are clean'),
    ({"model.objective": "appendix_b"}, r"Unknown objective 'appendix_b'; choose one of \['elbo', 'paper', "
                                        r"'public_code'\] for config.model.objective."),
    ({"model.reconstruction_error": "l2"}, r"Unknown reconstruction error 'l2'; choose one of \['l1', 'mse'\]"),
    ({"model.reconstruction_pixels": "average"}, r"Unknown pixel reduction 'average'; choose one of "
                                                 r"\['mean', 'sum'\]"),
    ({"model.selection": "balanced"}, r"Unknown selection 'balanced'; choose one of \['global', 'per_class'\]"),
    ({"model.pull": "trusted"}, r"Unknown generative pull 'trusted'; choose one of \['all', 'noise', 'none', 'untrusted'\] for "
                                r"config.model.pull. Did you mean 'untrusted'\?"),
    ({"estimate.members": 0}, r"estimate.members must be a whole number of at least 1 or None, got 0"),
    ({"model.pull": None}, r"Unknown generative pull None; choose one of \['all', 'noise', 'none', 'untrusted'\]"),
    ({"model.label_gradient": 2.0}, r"model.label_gradient must be a finite number in \[0, 1\] or None"),
    ({"model.beta0": -1.0}, r"model.beta0 must be a finite number of at least 0 or None, got -1.0; a beta weighs "
                            r"a term of the objective; 0 turns it off"),
    ({"model.beta3": float("nan")}, r"model.beta3 must be a finite number of at least 0 or None, got nan"),
    ({"model.mixup_alpha": float("inf")}, r"model.mixup_alpha must be a finite number above 0, got inf"),
])
def test_bad_values_are_refused_by_check_config_and_by_train(changes, match, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=match):
        config_checks.check_config(_config(**changes))
    _refused_by_train(monkeypatch, tmp_path, _config(**changes), match=match)


def test_good_values_pass():
    config_checks.check_config(_config(**{"model.forget_rate": "auto", "model.vae_depth": 2, "noise.rate": 0.0}))
    config_checks.check_config(_config(**{"model.objective": "paper", "model.reconstruction_error": "mse",
                                   "model.reconstruction_pixels": "sum", "model.detach_reconstruction": True,
                                   "model.label_gradient": 0.0, "model.selection": "per_class",
                                   "model.pull": "untrusted"}))


# 8: batch sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    ((256, 100, 1), r"train.batch_size=256 is larger than the 100 training examples, .*set "
                    r"train.batch_size to at most 100"),
    ((15, 100, 2), r"train.batch_size=15 does not split evenly over the strategy's 2 replicas; "
                   r"use a multiple of 2, such as 14 or 16\."),
    ((3, 100, 4), r"use a multiple of 4, such as 4\."),
    ((0, 100, 1), r"train.batch_size must be a whole number of at least 1, got 0"),
])
def test_check_batch_size_refuses_what_no_epoch_or_strategy_can_use(args, match):
    with pytest.raises(ValueError, match=match):
        checks.check_batch_size(*args)


def test_check_batch_size_accepts_a_fitting_batch():
    checks.check_batch_size(16, 16, 1)
    checks.check_batch_size(16, 100, 8)


def test_a_batch_larger_than_the_training_subset_is_refused_before_the_noise(monkeypatch, tmp_path):
    monkeypatch.setattr(noise, "make_noisy_labels", pytest.fail)  # never reached
    _refused_by_train(monkeypatch, tmp_path, _config(**{"train.batch_size": 128}),
                      match="train.batch_size=128 is larger than the 64 training examples")
    _refused_by_train(monkeypatch, tmp_path, _config(**{"data.train_size": 10}),
                      match="train.batch_size=16 is larger than the 10 training examples")
    _refused_by_train(monkeypatch, tmp_path, _config(**{"data.train_size": 100}),
                      match=r"data.train_size=100 asks for more train examples than tiny has \(64\); "
                            "set it to at most 64, or to 0 for all")


# 9: missing or corrupt dataset files ----------------------------------------------------

def _idx_gz(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fashion_mnist_folder(folder):
    rng = np.random.default_rng(0)
    for key, name in data.FASHION_MNIST_FILES.items():
        n = 40 if "train" in key else 20
        shape = (n, 28, 28) if key.startswith("x") else (n,)
        _idx_gz(folder / name, rng.integers(0, 10, shape))
    return folder


def _fashion_mnist_config(folder):
    return _config(**{"data.name": "fashion_mnist", "data.data_dir": str(folder)})


def test_a_missing_fashion_mnist_file_names_the_install_command(tmp_path):
    folder = _fashion_mnist_folder(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing in .*: train-labels-idx1-ubyte\.gz\. Install "
                                                r"them with `apt-get install dataset-fashion-mnist`"):
        training.train(_fashion_mnist_config(folder), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_truncated_fashion_mnist_file_names_the_reinstall_command(tmp_path):
    folder = _fashion_mnist_folder(tmp_path)
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(data.IDXFormatError, match=r"t10k-images-idx3-ubyte\.gz: not a valid gzip file, or "
                                                  r"cut short .*`apt-get install --reinstall dataset-fashion-mnist`"):
        training.train(_fashion_mnist_config(folder), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_fashion_mnist_files_that_are_fine_pass_the_data_checks(tmp_path):
    config = _fashion_mnist_config(_fashion_mnist_folder(tmp_path))
    dataset, noisy, _ = training.load_noisy_data(config)
    assert dataset.input_shape == (28, 28, 1) and len(noisy) == 40


# 10: unknown keys and names --------------------------------------------------------------

def test_an_unknown_key_lists_the_valid_keys_of_its_section(monkeypatch, tmp_path):
    config = _config()
    config.train.epoch = 3  # an unlocked ConfigDict accepts the typo silently
    match = (r"Unknown config key train.epoch: config.train has no key 'epoch'. Did you mean "
             r"train.epochs\? The valid keys of config.train are: batch_size, .*epochs, eval_batch_size")
    with pytest.raises(ValueError, match=match):
        config_checks.check_config(config)
    _refused_by_train(monkeypatch, tmp_path, config, match=match)


def test_unknown_top_level_keys_and_sections_are_refused():
    config = _config()
    config.epochs = 3
    with pytest.raises(ValueError, match=r"Unknown config key epochs: the config has no key 'epochs'. "
                                         r"The valid keys of the config are: data, estimate, grid, model"):
        config_checks.check_config(config)
    config = ml_collections.ConfigDict({**_config().to_dict(), "model": 3})
    with pytest.raises(ValueError, match=r"config.model must be a section .* got 3"):
        config_checks.check_config(config)


def test_missing_keys_are_refused():
    config = _config()
    with config.unlocked():
        del config.train["epochs"]
    with pytest.raises(ValueError, match=r"config.train lacks the keys epochs; build configs from "
                                         r"tf_causalnl.config.base_config\(\)"):
        config_checks.check_config(config)


def test_the_grid_and_moons_sections_are_checked_too():
    config = _config()
    config.grid = ml_collections.ConfigDict({"methods": ("ce",), "seeds": (0,), "method": "ce"})
    with pytest.raises(ValueError, match=r"Unknown config key grid.method: config.grid has no key "
                                         r"'method'. Did you mean grid.methods\?"):
        config_checks.check_config(config)
    config = _config()
    config.moons = ml_collections.ConfigDict({"seed": 1})
    with pytest.raises(ValueError, match=r"Unknown config key moons.seed: .*Did you mean moons.seeds\?"):
        config_checks.check_config(config)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.py")), ids=lambda p: p.stem)
def test_every_shipped_config_passes(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config_checks.check_config(module.get_config())


def _grid_config(methods, noise_types=("idn",), rates=(0.2,), pull="noise"):
    config = _config(**{"model.pull": pull})
    config.grid = ml_collections.ConfigDict(
        {"methods": methods, "noise_types": noise_types, "noise_rates": rates, "seeds": (0,)})
    return config


@pytest.mark.parametrize("config, match", [
    (_grid_config(("ce", "elr")), r"Unknown method 'elr'; choose one of \['causalnl', 'ce', "
                                        r".*\] for config.grid.methods"),
    (_grid_config(("ce",), noise_types=("sym",)), r"Unknown noise type 'sym'; choose one of \['idn', "
                                                  r"'pairflip', 'symmetric'\] for config.grid.noise_types"),
    (_grid_config(("ce",), rates=(0.2, 45)), r"each of config.grid.noise_rates must be in \[0, 1\), got 45"),
])
def test_a_grid_refuses_unknown_methods_before_the_first_cell(config, match, tmp_path):
    calls = []
    with pytest.raises(ValueError, match=match):
        grid.run(config, str(tmp_path / "grid"), train_fn=lambda *args: calls.append(args))
    assert calls == [] and not (tmp_path / "grid").exists()


def test_a_grid_refuses_an_unknown_key_before_the_first_cell(tmp_path):
    config = _grid_config(("ce",))
    config.model.zdim = 3
    with pytest.raises(ValueError, match="Unknown config key model.zdim"):
        grid.run(config, str(tmp_path / "grid"), train_fn=pytest.fail)
    assert not (tmp_path / "grid").exists()


# 11: a work directory of another run -----------------------------------------------------

def _workdir_of(config, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(config.to_dict()))
    (workdir / "metrics.csv").write_text("epoch,val_accuracy\n0,0.5\n")
    return workdir


def test_a_work_directory_of_another_config_is_refused_naming_the_keys(tmp_path):
    workdir = _workdir_of(_config(), tmp_path)
    changed = _config(**{"model.z_dim": 3, "train.batch_size": 8})
    with pytest.raises(ValueError, match=(
            r"holds a run of a different config \(model.z_dim: 2 in config.json, 3 now; "
            r"train.batch_size: 16 in config.json, 8 now\)\. .*Train into another work directory")):
        checks.check_workdir(changed, str(workdir))
    before = {p.name: p.read_bytes() for p in workdir.iterdir()}
    with pytest.raises(ValueError, match="holds a run of a different config"):
        training.train(changed, str(workdir))
    assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before


def test_a_resume_may_add_epochs_and_change_verbosity_but_not_remove_epochs(tmp_path):
    workdir = str(_workdir_of(_config(**{"train.epochs": 5}), tmp_path))
    checks.check_workdir(_config(**{"train.epochs": 5}), workdir)
    checks.check_workdir(_config(**{"train.epochs": 8, "train.verbose": 2}), workdir)
    checks.check_workdir(_config(**{"train.epochs": 5, "estimate.cache_dir": "/elsewhere"}), workdir)
    with pytest.raises(ValueError, match=r"train.epochs: 5 in config.json, 3 now\). .*may only add train.epochs"):
        checks.check_workdir(_config(**{"train.epochs": 3}), workdir)


def test_keys_added_later_as_none_keep_old_work_directories_valid(tmp_path):
    stored = _config().to_dict()
    del stored["model"]["vae_depth"]  # a run stored before the key existed
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(stored))
    checks.check_workdir(_config(), str(workdir))
    with pytest.raises(ValueError, match=r"model.vae_depth: None in config.json, 2 now"):
        checks.check_workdir(_config(**{"model.vae_depth": 2}), str(workdir))


def _stored_before_pull(tmp_path, config):
    stored = config.to_dict()
    del stored["model"]["pull"]  # stored before the key existed, when CausalNL pulled on every example
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(stored))
    return str(workdir)


def test_a_causalnl_run_stored_before_the_pull_default_changed_resumes_only_as_it_trained(tmp_path):
    workdir = _stored_before_pull(tmp_path, _config())
    assert checks.read_stored_config(workdir + "/config.json")["model"]["pull"] == "all"
    with pytest.raises(ValueError, match=r"model.pull: 'all' in config.json, 'noise' now"):
        checks.check_workdir(_config(), workdir)
    checks.check_workdir(_config(**{"model.pull": "all"}), workdir)


def test_a_run_of_another_method_stored_before_pull_existed_resumes_with_the_default(tmp_path):
    workdir = _stored_before_pull(tmp_path, _config(**{"model.method": "ce"}))
    checks.check_workdir(_config(**{"model.method": "ce"}), workdir)  # CE ignores the pull


def test_a_grid_stored_before_the_pull_default_changed_resumes_only_as_it_trained(tmp_path):
    stored = _grid_config(("ce", "causalnl")).to_dict()
    stored["model"]["pull"] = None  # unset, as grids stored it while None meant "all"
    (tmp_path / "grid_config.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"holds a grid with a different training config \(model.pull\)"):
        grid_cells.check_compatible(_grid_config(("ce", "causalnl")), str(tmp_path))
    grid_cells.check_compatible(_grid_config(("ce", "causalnl"), pull="all"), str(tmp_path))
    stored["grid"]["methods"] = ["ce", "coteaching"]  # no CausalNL cell: the key changes nothing
    (tmp_path / "grid_config.json").write_text(json.dumps(stored))
    grid_cells.check_compatible(_grid_config(("ce", "coteaching")), str(tmp_path))


def test_an_unreadable_work_directory_is_refused(tmp_path):
    checks.check_workdir(_config(), str(tmp_path / "new"))  # not there yet: fine
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="work directory .*file is a file; choose another --workdir"):
        checks.check_workdir(_config(), str(tmp_path / "file"))
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON .*use another work directory"):
        checks.check_workdir(_config(), str(tmp_path))


def test_config_differences_ignores_sections_and_compares_as_json():
    old = _config().to_dict()
    new = _config()
    new.grid = ml_collections.ConfigDict({"seeds": (0, 1)})
    assert config_checks.config_differences(old, new, ignore=("grid",)) == []
    new.model.z_dim = 7
    assert config_checks.config_differences(old, new) == ["grid", "model.z_dim"]
    assert config_checks.config_differences(old, new, ignore=("grid", "model")) == []
