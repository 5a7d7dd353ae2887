"""The pictures of a run: the numbers behind them, the PNGs, and a saved run end to end."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import keras
import matplotlib.image
import numpy as np
import pytest

from tf_causalnl import CausalNL, baselines, networks
from tf_causalnl.config import base_config
from tf_causalnl.experiments import run_reports
from tf_causalnl.reports import pictures, probes, run_pictures

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPE, CLASSES = (8, 8, 1), 3
IMAGE_PICTURES = ("reconstructions.png", "class_samples.png")
ALL_PICTURES = ("training_curves.png", "confusion_matrix.png", "transition.png") + IMAGE_PICTURES


def _causalnl(shape=SHAPE):
    build = networks.build_small_cnn if len(shape) == 3 else networks.build_mlp_classifier
    return CausalNL(build(shape, CLASSES), z_dim=2, vae_width=4, forget_rate=0.2)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8), rng.integers(0, CLASSES, size=n)


def _assert_png(path, min_height=100, min_width=100):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_height and image.shape[1] >= min_width, image.shape


def _record_transition(monkeypatch):
    """Replaces pictures.transition (as run_pictures calls it) by a recorder of its arguments; returns what it records."""
    drawn = {}

    def record(estimated, true_matrix, path, **kwargs):
        drawn.update(estimated=estimated, true=true_matrix, **kwargs)
        return path

    monkeypatch.setattr(run_pictures, "transition", record)  # where write_pictures looks it up
    return drawn


def _write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    pathlib.Path(path).write_text("\n".join(lines) + "\n")


CAUSALNL_COLUMNS = ("epoch", "accuracy", "clean_accuracy", "coteaching", "forget_rate", "kl_z", "loss",
                    "negative_entropy", "noisy_label_ce", "reconstruction", "selection_precision",
                    "val_accuracy", "val_loss")
CE_COLUMNS = ("epoch", "accuracy", "clean_accuracy", "loss", "val_accuracy", "val_loss")


# ----------------------------------------------------------------------------
# The numbers.


def test_confusion_counts_and_rates_match_a_hand_made_example(tmp_path):
    y_true = [0, 0, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 2, 0, 2]
    counts = probes.confusion_counts(y_true, y_pred, 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_allclose(probes.row_normalise(counts),
                               [[0.5, 0.5, 0], [0, 1, 0], [1 / 3, 0, 2 / 3]])
    np.testing.assert_array_equal(probes.row_normalise([[0, 0], [1, 3]]), [[0, 0], [0.25, 0.75]])
    with pytest.raises(ValueError, match=r"y_pred must lie in \[0, 3\)"):
        probes.confusion_counts([0], [3], 3)

    path = pictures.confusion_matrix(y_true, y_pred, 3, str(tmp_path / "c.png"), class_names=("a", "b", "c"))
    _assert_png(path)
    # 100 classes: no annotation, still a picture.
    rng = np.random.default_rng(0)
    _assert_png(pictures.confusion_matrix(rng.integers(0, 100, 500), rng.integers(0, 100, 500), 100,
                                          str(tmp_path / "c100.png")))
    with pytest.raises(ValueError, match="Got 2 class names for 3 classes"):
        pictures.confusion_matrix(y_true, y_pred, 3, str(tmp_path / "x.png"), class_names=("a", "b"))


def test_flip_rate_is_the_mean_off_diagonal_mass_of_non_empty_rows():
    matrix = [[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.0, 0.0, 0.0]]
    assert probes.flip_rate(matrix) == pytest.approx(0.15)
    assert probes.flip_rate(np.eye(4)) == 0.0


def test_average_per_class_is_the_mean_of_each_class_rows():
    probabilities = [[0.6, 0.4, 0.0], [0.8, 0.0, 0.2], [0.1, 0.9, 0.0], [0.0, 0.5, 0.5]]
    average = probes.average_per_class(probabilities, [0, 0, 1, 0], 3)
    np.testing.assert_allclose(average, [[1.4 / 3, 0.9 / 3, 0.7 / 3], [0.1, 0.9, 0.0], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"probabilities must have shape \(2, 3\)"):
        probes.average_per_class(probabilities, [0, 1], 3)


def test_tile_places_each_image_in_its_row_and_column():
    images = np.arange(2 * 3).reshape(2, 3, 1, 1, 1) * np.ones((1, 1, 2, 2, 1))
    mosaic = probes.tile(images, pad=1, fill=-1.0)
    assert mosaic.shape == (2 * 3 - 1, 3 * 3 - 1, 1)
    assert mosaic[3, 6, 0] == 5.0 and mosaic[0, 3, 0] == 1.0 and mosaic[2, 0, 0] == -1.0
    assert probes.tile(images, pad=0).shape == (4, 6, 1)


# ----------------------------------------------------------------------------
# CausalNL's networks behind the pictures.


def test_causalnl_transition_rows_sum_to_one_and_average_branch_one_by_hand(tmp_path):
    model = _causalnl()
    x, classes = _images(7)
    probabilities = probes.noisy_label_probabilities(model, x, classes, batch_size=3)
    expected = []
    for image, label in zip(x, classes):  # one example at a time, as Algorithm 1 feeds them
        image = keras.ops.convert_to_tensor(image[None].astype("float32") / 255.0)
        y = keras.ops.convert_to_tensor(np.eye(CLASSES, dtype="float32")[[label]])
        z_mean, _ = model.latent_encoders[0]([image, y])
        reconstruction = model.decoders[0]([z_mean, y])
        expected.append(keras.ops.softmax(model.noisy_label_decoders[0]([reconstruction, y]))[0])
    expected = np.array(expected)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)

    matrix = probes.average_per_class(probabilities, classes, CLASSES)
    for c in range(CLASSES):
        np.testing.assert_allclose(matrix[c], expected[classes == c].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-5)

    true_matrix = np.array([[0.7, 0.3, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 0.9]])
    _assert_png(pictures.transition(matrix, true_matrix, str(tmp_path / "t.png"), estimate_label="CausalNL"))
    _assert_png(pictures.transition(None, true_matrix, str(tmp_path / "t1.png")))
    with pytest.raises(ValueError, match="both are None"):
        pictures.transition(None, None, str(tmp_path / "t2.png"))


def test_reconstructions_use_the_predicted_class_and_the_mean_of_z(tmp_path):
    model = _causalnl()
    x, y = _images(12)
    predicted, reconstruction = probes.reconstruct(model, x)
    images = keras.ops.convert_to_tensor(x.astype("float32") / 255.0)
    np.testing.assert_array_equal(predicted, np.argmax(model.classifier(images), axis=-1))
    one_hot = keras.ops.convert_to_tensor(np.eye(CLASSES, dtype="float32")[predicted])
    z_mean, _ = model.latent_encoders[0]([images, one_hot])
    np.testing.assert_allclose(reconstruction, model.decoders[0]([z_mean, one_hot]), rtol=1e-4, atol=1e-6)
    assert reconstruction.shape == x.shape and reconstruction.min() >= 0 and reconstruction.max() <= 1

    path = pictures.reconstructions(model, x, y, str(tmp_path / "r.png"), per_class=3)
    _assert_png(path, min_width=200)  # a class with fewer than 3 images leaves blanks


def test_class_samples_decode_one_hot_labels_with_seeded_gaussian_z(tmp_path):
    # A decoder whose image is (class + 1) / 10 everywhere, whatever z is.
    z_in, y_in = keras.Input((2,)), keras.Input((CLASSES,))
    dense = keras.layers.Dense(64, use_bias=False)
    out = keras.layers.Reshape(SHAPE)(dense(keras.layers.Concatenate()([z_in, y_in])))
    by_class = keras.Model([z_in, y_in], out)
    dense.set_weights([np.concatenate([np.zeros((2, 64)), np.repeat([[0.1], [0.2], [0.3]], 64, axis=1)])])
    samples = probes.sample_images(by_class, [0, 1, 2], per_class=4)
    assert samples.shape == (3, 4, *SHAPE)
    for c in range(CLASSES):
        np.testing.assert_allclose(samples[c], (c + 1) / 10, rtol=1e-6)

    decoder = _causalnl().decoders[0]
    first, again = (probes.sample_images(decoder, [0, 1, 2], 4, seed=3) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, probes.sample_images(decoder, [0, 1, 2], 4, seed=4))
    _assert_png(pictures.class_samples(decoder, str(tmp_path / "s.png"), per_class=5,
                                       class_names=("x", "y", "z")), min_width=200)


# ----------------------------------------------------------------------------
# Training curves, for every method's metrics.csv.


@pytest.mark.parametrize("columns", [CAUSALNL_COLUMNS, CE_COLUMNS], ids=["causalnl", "ce"])
def test_training_curves_show_the_columns_the_method_logged(tmp_path, columns):
    rows = [[epoch] + [0.1 * (i + epoch) for i in range(len(columns) - 1)] for epoch in range(3)]
    _write_csv(tmp_path / "metrics.csv", columns, rows)
    metrics = probes.read_metrics(str(tmp_path / "metrics.csv"))
    assert set(metrics) == set(columns)
    np.testing.assert_array_equal(metrics["epoch"], [0, 1, 2])

    panels = dict(probes.curve_panels(list(metrics)))
    assert panels["loss"] == ["loss", "val_loss"]
    assert panels["accuracy"] == ["val_accuracy", "accuracy", "clean_accuracy"]
    if columns is CAUSALNL_COLUMNS:
        assert panels["CausalNL loss terms"] == ["reconstruction", "noisy_label_ce", "negative_entropy",
                                                 "kl_z", "coteaching"]
        assert panels["small-loss selection"] == ["selection_precision", "forget_rate"]
    else:
        assert set(panels) == {"loss", "accuracy"}
    _assert_png(pictures.training_curves(metrics, str(tmp_path / "curves.png")), min_width=400)


def test_training_curves_put_unknown_columns_in_their_own_panel_and_read_blanks_as_nan(tmp_path):
    _write_csv(tmp_path / "metrics.csv", ("epoch", "disagreement", "val_accuracy"), [[0, "", 0.5]])
    metrics = probes.read_metrics(str(tmp_path / "metrics.csv"))
    assert np.isnan(metrics["disagreement"][0])
    assert probes.curve_panels(list(metrics)) == [("accuracy", ["val_accuracy"]),
                                                    ("other logged values", ["disagreement"])]
    _assert_png(pictures.training_curves(metrics, str(tmp_path / "curves.png")))


# ----------------------------------------------------------------------------
# A run's pictures.


def test_write_pictures_of_a_causalnl_image_run(tmp_path):
    model = _causalnl()
    x_train, clean = _images(40, seed=1)
    noisy = np.where(np.arange(40) % 4 == 0, (clean + 1) % CLASSES, clean)
    x_test, y_test = _images(12, seed=2)
    _write_csv(tmp_path / "metrics.csv", CE_COLUMNS, [[0, 0.5, 0.5, 1.0, 0.4, 1.1]])
    written = run_pictures.write_pictures(str(tmp_path), model, x_test, y_test, x_train=x_train,
                                      noisy_labels=noisy, clean_labels=clean, max_examples=10)
    assert [os.path.basename(p) for p in written] == list(ALL_PICTURES)
    for path in written:
        assert os.path.dirname(path) == str(tmp_path / "pictures")
        _assert_png(path)
    assert not [n for n in os.listdir(tmp_path / "pictures") if n.endswith(".tmp")]


def test_vector_runs_skip_the_image_pictures_and_unknown_clean_labels_use_predictions(tmp_path, monkeypatch):
    drawn = _record_transition(monkeypatch)
    model = _causalnl(shape=(4,))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)).astype("float32"), rng.integers(0, CLASSES, 20)
    (tmp_path / "noise.json").write_text(json.dumps({"transition": np.eye(CLASSES).tolist()}))
    written = run_pictures.write_pictures(str(tmp_path), model, x, y, x_train=x, noisy_labels=y)
    assert [os.path.basename(p) for p in written] == ["confusion_matrix.png", "transition.png"]
    assert "classifier's prediction" in drawn["estimate_label"]
    seen = np.any(drawn["estimated"] > 0, axis=1)  # classes the classifier predicted
    np.testing.assert_allclose(drawn["estimated"].sum(axis=1)[seen], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(drawn["true"], np.eye(CLASSES))  # no clean labels: from noise.json
    with pytest.raises(ValueError, match="this model reads vectors"):
        pictures.reconstructions(model, x, y, str(tmp_path / "r.png"))


def test_a_baseline_shows_the_anchor_point_estimate(tmp_path, monkeypatch):
    drawn = _record_transition(monkeypatch)
    model = baselines.NoisyLabelClassifier(networks.build_small_cnn(SHAPE, CLASSES))
    anchor = [[0.6, 0.4, 0.0], [0.0, 0.7, 0.3], [0.2, 0.0, 0.8]]
    estimate = {"transition": anchor, "noisy_prior": [1 / 3] * 3, "clean_prior": [1 / 3] * 3,
                "noise_rate": 0.3}
    (tmp_path / "noise_estimate.json").write_text(json.dumps({"key": {}, "estimate": estimate}))
    x, y = _images(9)
    noisy = (y + 1) % CLASSES
    written = run_pictures.write_pictures(str(tmp_path), model, x, y, x_train=x, noisy_labels=noisy,
                                      clean_labels=y)
    assert [os.path.basename(p) for p in written] == ["confusion_matrix.png", "transition.png"]
    assert drawn["estimate_label"] == "anchor-point estimate"
    np.testing.assert_array_equal(drawn["estimated"], anchor)
    np.testing.assert_array_equal(drawn["true"], np.roll(np.eye(CLASSES), 1, axis=1))


def test_a_missing_or_incomplete_work_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"There is no work directory .*scripts/train.py"):
        run_reports.pictures_from_workdir(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"has no config.json.*scripts/train.py"):
        run_reports.pictures_from_workdir(str(tmp_path))
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        run_reports.pictures_from_workdir(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps(base_config().to_dict()))
    with pytest.raises(FileNotFoundError, match="neither model.keras nor checkpoint.keras.*resumes"):
        run_reports.pictures_from_workdir(str(tmp_path))


def test_rebuilt_noisy_labels_are_checked_against_the_saved_ones(tmp_path, caplog):
    labels = np.array([0, 1, 2, 1])
    np.save(tmp_path / "noisy_labels.npy", labels)
    assert run_reports._saved_noisy_labels(str(tmp_path), labels) is labels
    assert run_reports._saved_noisy_labels(str(tmp_path), np.array([0, 1, 2, 2])) is None
    assert "do not match the run's noisy_labels.npy (1 of 4 labels differ)" in caplog.text
    assert run_reports._saved_noisy_labels(str(tmp_path), labels[:3]) is None
    assert "(4 saved, 3 rebuilt)" in caplog.text


def test_pictures_of_a_trained_run_from_the_command_line(tmp_path, cli_run):
    # The run of scripts/train.py that tests/test_training.py checks (tests/conftest.py).
    assert cli_run.done.returncode == 0, cli_run.done.stderr[-3000:]
    workdir = tmp_path / "run"
    shutil.copytree(cli_run.workdir, workdir)
    expected = sorted(str(workdir / "pictures" / name) for name in ALL_PICTURES)
    # Training drew every picture of a CausalNL run on images.
    assert sorted(str(p) for p in (workdir / "pictures").iterdir()) == expected

    # The command on a run that stopped before model.keras: it draws the checkpoint.
    os.remove(workdir / "model.keras")
    for path in expected:
        os.remove(path)
    command = [sys.executable, str(ROOT / "scripts" / "pictures.py"), "--workdir", str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(done.stdout.split()) == expected
    assert "checkpoint.keras" in done.stderr
    for path in expected:
        _assert_png(path)
