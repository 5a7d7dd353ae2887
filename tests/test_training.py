"""Training from a config into a work directory, in process and from the command line.

The first test and the command line train CausalNL as users do, its steps
traced; the tests of what `train` writes for each baseline, for a shared
noise estimate and for Clothing1M run their steps eagerly (the `eager`
fixture of tests/conftest.py), since tracing would be most of their cost.
"""

import csv
import json
import os

import keras
import numpy as np
import pytest

from tf_causalnl import CausalNL, data, training
from tf_causalnl.config import base_config
from tf_causalnl.data import clothing1m
from tf_causalnl.experiments import run_reports
from tf_causalnl.training import estimate as training_estimate
from tf_causalnl.training import run as training_run

#: tf.data's warning that `run_functions_eagerly` (the `eager` fixture) does not apply to it.
EAGER_WARNING = "ignore:Even though the `tf.config.experimental_run_functions_eagerly`"


def _tiny_dataset(data_dir=None):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(96, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=96)
    return data.Dataset("tiny", x[:64], y[:64], x[64:], y[64:], 3)


def _tiny_config(epochs):
    config = base_config()
    config.data.name = "tiny"
    config.model.classifier = "small_cnn"
    config.model.z_dim = 2
    # One stride-2 layer per VAE network (the default is 4): tracing CausalNL's
    # train step, most of the cost of a run this small, takes about 40% less.
    config.model.vae_depth = 1
    config.model.ramp_epochs = 2
    config.noise.rate = 0.3
    config.model.forget_rate = 0.3
    config.train.epochs = epochs
    config.train.batch_size = 16
    config.train.eval_batch_size = 32
    config.train.verbose = 0
    return config


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.pictures
def test_train_writes_the_work_directory_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setitem(data.LOADERS, "tiny", _tiny_dataset)
    workdir = str(tmp_path / "run")
    results = training.train(_tiny_config(epochs=2), workdir)

    for name in ("config.json", "noise.json", "noisy_labels.npy", "metrics.csv", "model.keras",
                 "checkpoint.keras", "results.json"):
        assert os.path.exists(os.path.join(workdir, name)), name
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert set(os.listdir(os.path.join(workdir, "pictures"))) == {
        "training_curves.png", "confusion_matrix.png", "transition.png", "reconstructions.png",
        "class_samples.png"}
    noisy = np.load(os.path.join(workdir, "noisy_labels.npy"))
    clean = _tiny_dataset().y_train
    report = json.load(open(os.path.join(workdir, "noise.json")))
    assert report["realized_rate"] == pytest.approx(np.mean(noisy != clean))
    rows = _rows(os.path.join(workdir, "metrics.csv"))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    for column in ("loss", "reconstruction", "kl_z", "coteaching", "accuracy", "clean_accuracy",
                   "selection_precision", "val_accuracy", "forget_rate"):
        assert column in rows[0], column
    accuracy = [float(r["val_accuracy"]) for r in rows]
    assert results["clean_test_accuracy_last"] == pytest.approx(accuracy[-1])
    assert results["clean_test_accuracy_mean_last_10"] == pytest.approx(np.mean(accuracy))
    model = keras.saving.load_model(os.path.join(workdir, "model.keras"))
    assert isinstance(model, CausalNL)
    x_test = _tiny_dataset().x_test
    logs = model.evaluate(x_test, _tiny_dataset().y_test, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(accuracy[-1])

    # Rerunning a finished run adds nothing; with more epochs it continues.
    monkeypatch.setattr(training_run, "write_pictures", lambda *args, **kwargs: [])  # drawn above
    again = training.train(_tiny_config(epochs=2), workdir)
    assert [r["epoch"] for r in _rows(os.path.join(workdir, "metrics.csv"))] == ["0", "1"]
    assert again["clean_test_accuracy_last"] == results["clean_test_accuracy_last"]
    training.train(_tiny_config(epochs=3), workdir)
    rows = _rows(os.path.join(workdir, "metrics.csv"))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert float(rows[2]["forget_rate"]) == pytest.approx(0.3)


@pytest.mark.parametrize("method", sorted(set(training.METHODS) - {"causalnl"}))
@pytest.mark.filterwarnings(EAGER_WARNING)
def test_every_baseline_trains_through_the_common_entry_point(tmp_path, monkeypatch, method, eager):
    monkeypatch.setitem(data.LOADERS, "tiny", _tiny_dataset)
    config = _tiny_config(epochs=1)
    config.model.method = method
    config.estimate.epochs = 1
    workdir = tmp_path / method
    results = training.train(config, str(workdir))

    model = keras.saving.load_model(workdir / "model.keras")
    assert isinstance(model, training.METHODS[method])
    assert 0.0 <= results["clean_test_accuracy_last"] <= 1.0
    assert _rows(workdir / "metrics.csv")[0]["val_accuracy"]
    uses_transition = method in ("forward", "reweight", "trevision")
    assert (workdir / "noise_estimate.json").exists() == uses_transition
    if uses_transition:
        estimate = json.load(open(workdir / "noise_estimate.json"))["estimate"]
        np.testing.assert_allclose(model.transition, estimate["transition"])
        assert results["estimated_noise_rate"] == pytest.approx(estimate["noise_rate"])
    if method in ("coteaching", "mentornet"):
        assert results["forget_rate"] == pytest.approx(0.3)


@pytest.mark.filterwarnings(EAGER_WARNING)
def test_auto_forget_rate_uses_the_estimate_shared_through_the_cache(tmp_path, monkeypatch, eager):
    monkeypatch.setitem(data.LOADERS, "tiny", _tiny_dataset)
    config = _tiny_config(epochs=1)
    config.model.method = "coteaching"
    config.model.forget_rate = "auto"
    config.estimate.epochs = 1
    config.estimate.cache_dir = str(tmp_path / "estimates")
    first = training.train(config, str(tmp_path / "a"))
    assert first["forget_rate"] == pytest.approx(first["estimated_noise_rate"])
    assert 0.0 <= first["forget_rate"] < 1.0
    assert len(os.listdir(tmp_path / "estimates")) == 1
    # A second run on the same data, noise and seed reads the cached estimate.
    cached = json.load(open(tmp_path / "a" / "noise_estimate.json"))
    config.model.method = "forward"
    second = training.train(config, str(tmp_path / "b"))
    assert second["estimated_noise_rate"] == first["estimated_noise_rate"]
    assert json.load(open(tmp_path / "b" / "noise_estimate.json")) == cached
    assert len(os.listdir(tmp_path / "estimates")) == 1


def test_unknown_method_and_classifier_name_the_valid_ones(monkeypatch):
    config = _tiny_config(epochs=1)
    config.model.method = "elr"
    with pytest.raises(ValueError, match=r"Unknown method 'elr'; choose one of \['causalnl', 'ce', "):
        training.build_model(config, (8, 8, 1), 3)
    config.model.method = "causalnl"
    config.model.classifier = "vgg"
    with pytest.raises(ValueError, match="Unknown classifier 'vgg'; choose one of"):
        training.build_model(config, (8, 8, 1), 3)


def test_unknown_strategy_is_refused_before_anything_is_written(tmp_path):
    config = _tiny_config(epochs=1)
    config.train.strategy = "tpu"
    with pytest.raises(ValueError, match=r"Unknown strategy 'tpu'; choose one of \['default', 'mirrored', "):
        training.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_command_line_trains_the_cpu_config_with_overrides(cli_run):
    # scripts/train.py --config configs/fmnist_idn45_cpu.py with overrides such as
    # --config.noise.rate=0.2 and --config.data.train_size=64, run once in
    # tests/conftest.py (tests/test_pictures.py draws its pictures again).
    done, workdir = cli_run.done, cli_run.workdir
    assert done.returncode == 0, done.stderr[-3000:]
    assert "clean test accuracy:" in done.stdout
    config = json.load(open(workdir / "config.json"))
    assert config["noise"]["rate"] == 0.2 and config["data"]["train_size"] == 64
    results = json.load(open(workdir / "results.json"))
    assert results["epochs"] == 1 and 0.0 <= results["clean_test_accuracy_last"] <= 1.0
    # The decoder's test error against the median image's, on the 40 real test images.
    images = data.load_fashion_mnist().x_test[:40].astype(np.float32) / 255.0
    median_l1 = np.abs(images - np.median(images, axis=0)).mean()
    assert results["median_image_l1"] == pytest.approx(median_l1, rel=1e-5)
    assert 0.0 < results["test_reconstruction_l1"] < 1.0


def test_a_stale_estimate_lock_left_by_a_killed_process_is_broken(tmp_path):
    lock = tmp_path / "noise_estimate.json.lock"
    lock.write_text("")
    old = os.path.getmtime(lock) - 7200
    os.utime(lock, (old, old))
    with training_estimate._exclusive(str(lock), stale_seconds=3600):
        assert lock.exists()
    assert not lock.exists()


def _clothing1m_config(root, epochs=1):
    config = _tiny_config(epochs)
    config.data.name = "clothing1m"
    config.data.data_dir = str(root)
    config.data.image_size, config.data.resize = 8, 12
    config.noise.type = "real"
    config.train.batch_size = 4
    config.train.eval_batch_size = 4
    return config


def _clothing1m_test_set(root):
    dataset = clothing1m.load(root)
    return clothing1m.eval_dataset(dataset.test_files, dataset.test_labels, batch_size=4,
                                   image_size=8, resize=12)


@pytest.mark.pictures
@pytest.mark.filterwarnings(EAGER_WARNING)
def test_clothing1m_trains_on_its_real_noisy_labels(tmp_path, make_clothing1m, eager):
    root, expected = make_clothing1m(n_train=8, n_test=4, size=16)
    workdir = tmp_path / "run"
    results = training.train(_clothing1m_config(root), str(workdir))

    rows = _rows(workdir / "metrics.csv")
    assert len(rows) == 1 and "clean_accuracy" not in rows[0] and "selection_precision" not in rows[0]
    assert not (workdir / "noise.json").exists() and not (workdir / "noisy_labels.npy").exists()
    assert "realized_noise_rate" not in results and results["forget_rate"] == pytest.approx(0.3)
    model = keras.saving.load_model(workdir / "model.keras")
    assert model.classifier.input_shape == (None, 8, 8, 3) and model.num_classes == 14
    # val_accuracy scores the clean test labels.
    test = _clothing1m_test_set(root)
    logs = model.evaluate(test, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(float(rows[0]["val_accuracy"]))
    assert [int(y) for _, y in expected["test"]] == list(np.concatenate([y for _, y in test]))
    # Pictures from the test images; no true transition without clean training labels.
    drawn = {"training_curves.png", "confusion_matrix.png", "reconstructions.png", "class_samples.png"}
    assert set(os.listdir(workdir / "pictures")) == drawn
    (workdir / "pictures" / "confusion_matrix.png").unlink()
    redrawn = run_reports.pictures_from_workdir(str(workdir))
    assert {os.path.basename(p) for p in redrawn} == drawn


def test_real_and_synthetic_noise_go_with_their_datasets(tmp_path, monkeypatch, make_clothing1m):
    monkeypatch.setitem(data.LOADERS, "tiny", _tiny_dataset)
    config = _tiny_config(epochs=1)
    config.noise.type = "real"
    with pytest.raises(ValueError, match=r'noise.type="real" .* labels of tiny are clean: choose .*idn'):
        training.train(config, str(tmp_path / "a"))

    root, _ = make_clothing1m(n_train=8, n_test=4, size=16)
    config = _clothing1m_config(root)
    config.noise.type = "idn"
    with pytest.raises(ValueError, match=r'clothing1m are already noisy .* set noise.type="real" \(got \'idn\'\)'):
        training.train(config, str(tmp_path / "b"))
    config.noise.type = "real"
    config.model.forget_rate = "auto"
    with pytest.raises(ValueError, match="noise estimate .* which clothing1m is too large for"):
        training.train(config, str(tmp_path / "c"))


def test_unknown_dataset_and_misplaced_pretrained_weights_are_refused(tmp_path):
    config = _tiny_config(epochs=1)
    config.data.name = "clothing"
    with pytest.raises(ValueError, match=r"Unknown dataset 'clothing'; choose one of \['cifar10', .*'clothing1m'"):
        training.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    config.model.pretrained = "imagenet"
    with pytest.raises(ValueError, match=r"model.pretrained='imagenet' needs a classifier with pretrained "
                                         r"weights \(resnet50_imagenet\), but model.classifier is 'small_cnn'"):
        training.build_model(config, (8, 8, 1), 3)


def test_vae_depth_reaches_causalnl(monkeypatch):
    config = _tiny_config(epochs=1)
    config.model.vae_depth = 2
    model = training.build_model(config, (8, 8, 1), 3)
    strided = [l for l in model.latent_encoders[0].layers if isinstance(l, keras.layers.Conv2D)]
    assert len(strided) == 2


def test_a_method_without_a_forget_rate_builds_from_a_config_that_says_auto():
    # A grid's or benchmark's "auto" config reused for CE (no forget rate): the key is not its.
    config = base_config()
    config.model.method, config.model.classifier, config.model.forget_rate = "ce", "small_cnn", "auto"
    model = training.build_model(config, (8, 8, 1), 3)
    assert type(model).__name__ == "NoisyLabelClassifier"
