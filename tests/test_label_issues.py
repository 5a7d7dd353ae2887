"""Which labels are wrong: the scores by hand, T(x) of tiny networks, the command, a detection run."""

import csv
import pathlib
import shutil
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import CausalNL, baselines, networks, noise
from tf_causalnl.reports import label_issues

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHAPE, CLASSES = (8, 8, 1), 3


def _causalnl(shape=SHAPE, classes=CLASSES, **kwargs):
    build = networks.build_small_cnn if len(shape) == 3 else networks.build_mlp_classifier
    kwargs.setdefault("forget_rate", 0.2)  # a number: no estimate before each fit
    return CausalNL(build(shape, classes), z_dim=2, vae_width=4, **kwargs)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8), rng.integers(0, CLASSES, size=n)


def test_the_posterior_is_bayes_rule_on_q_and_t_by_hand():
    q = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    t = np.array([np.eye(3) * 0.7 + 0.1, np.eye(3)])  # example 0: 0.8 on the diagonal, 0.1 off it
    given = np.array([1, 0])
    issues = label_issues.scores_from(q, given, "posterior", t)
    # Example 0, given 1: joint = q * T[:, 1] = (0.05, 0.24, 0.02), P(Y=1 | x, 1) = 0.24 / 0.31.
    np.testing.assert_allclose(issues.posterior[0], [0.05 / 0.31, 0.24 / 0.31, 0.02 / 0.31])
    np.testing.assert_allclose(issues.score[0], 1 - 0.24 / 0.31)
    # Example 1: T = I, so the given label is the clean one whatever q says.
    np.testing.assert_allclose(issues.score[1], 0.0)
    assert issues.predicted.tolist() == [1, 0] and not issues.is_issue.any()
    np.testing.assert_allclose(issues.noise_rate, (1 - 0.24 / 0.31) / 2)
    # T(x) at the predicted class, and its mean per predicted class (class 2: never predicted).
    np.testing.assert_allclose(issues.transition_rows, [[0.1, 0.8, 0.1], [1, 0, 0]])
    np.testing.assert_allclose(issues.class_transition(), [[1, 0, 0], [0.1, 0.8, 0.1], [0, 0, 1]])


def test_classifier_scores_are_cleanlabs_self_confidence_and_normalized_margin():
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.2, 0.2, 0.6]])
    given = np.array([0, 0, 2])
    confidence = label_issues.scores_from(p, given, "self_confidence")
    np.testing.assert_allclose(confidence.score, [0.4, 0.8, 0.4])
    margin = label_issues.scores_from(p, given, "normalized_margin")
    # quality = (p[given] - max other + 1) / 2: (0.65, 0.25, 0.7); score = 1 - quality.
    np.testing.assert_allclose(margin.score, [0.35, 0.75, 0.3])
    assert margin.ranking.tolist() == [1, 0, 2] and confidence.ranking.tolist() == [1, 0, 2]  # ties: index order
    assert confidence.is_issue.tolist() == [False, True, False]
    np.testing.assert_allclose(confidence.noise_rate, 1 / 3)
    assert confidence.transition is None and confidence.class_transition() is None


def test_t_of_x_is_the_noisy_label_decoder_on_the_reconstruction_for_every_class():
    model = _causalnl()
    x, given = _images(5)
    t = label_issues.transition(model, x).numpy()
    assert t.shape == (5, CLASSES, CLASSES)
    images = tf.constant(x.astype(np.float32) / 255.0)
    for c in range(CLASSES):  # By hand, one class at a time, through branch 1's networks.
        y = tf.one_hot(np.full(5, c), CLASSES)
        z_mean, _ = model.latent_encoders[0]([images, y])
        logits = model.noisy_label_decoders[0]([model.decoders[0]([z_mean, y]), y])
        np.testing.assert_allclose(t[:, c], tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6)
    issues = label_issues.find_label_issues(model, x, given, batch_size=2)
    q = model(images).numpy()
    expected = label_issues.scores_from(q.astype(np.float64), given, "posterior", t.astype(np.float64))
    np.testing.assert_allclose(issues.score, expected.score, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(issues.transition, t, rtol=1e-5, atol=1e-6)


def test_both_branches_average_q_and_t_over_the_two_networks():
    model = _causalnl()
    x, given = _images(4)
    images = tf.constant(x.astype(np.float32) / 255.0)
    q = np.mean([tf.nn.softmax(model.classifiers[b](images)).numpy() for b in (0, 1)], axis=0)
    t = np.mean([label_issues.transition(model, x, b).numpy() for b in (0, 1)], axis=0)
    assert not np.allclose(t, label_issues.transition(model, x, 0).numpy())  # the branches differ
    issues = label_issues.find_label_issues(model, x, given, both_branches=True)
    np.testing.assert_allclose(issues.probabilities, q, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(issues.transition, t, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="both_branches=True needs a CausalNL"):
        label_issues.find_label_issues(baselines.CoTeaching(networks.build_small_cnn(SHAPE, CLASSES)), x, given,
                                       both_branches=True)


def test_a_dataset_of_batches_gives_what_the_arrays_give():
    model = _causalnl()
    x, given = _images(7)
    from_arrays = label_issues.find_label_issues(model, x, given, batch_size=3)
    dataset = tf.data.Dataset.from_tensor_slices((x, {"noisy": given, "clean": given})).batch(3)
    from_dataset = label_issues.find_label_issues(model, dataset)
    np.testing.assert_allclose(from_dataset.score, from_arrays.score, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(from_dataset.given, given)


def test_baselines_rank_by_their_classifier_and_a_frame_holds_every_column():
    model = baselines.CoTeaching(networks.build_small_cnn(SHAPE, CLASSES))
    x, given = _images(6)
    issues = label_issues.find_label_issues(model, x, given)
    assert issues.method == "self_confidence"
    np.testing.assert_allclose(issues.score, 1 - model.predict(x, verbose=0)[np.arange(6), given], rtol=1e-5)
    frame = label_issues.find_label_issues(_causalnl(), x, given).to_dataframe()
    assert list(frame.columns) == ["index", "given_label", "predicted_label", "score", "rank", "is_issue",
                                   "t0", "t1", "t2"]
    assert sorted(frame["rank"]) == list(range(1, 7))
    np.testing.assert_allclose(frame[["t0", "t1", "t2"]].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: label_issues.find_label_issues(baselines.CoTeaching(networks.build_small_cnn(SHAPE, CLASSES)),
                                                    x, y, score="posterior"),
     r'score="posterior" needs a CausalNL.*use score="self_confidence"'),
    (lambda m, x, y: label_issues.find_label_issues(m, x, y, score="margin"), "score must be one of"),
    (lambda m, x, y: label_issues.find_label_issues(m, x, y + 3),
     r"labels has labels outside \[0, 3\) in 6 of its 6 examples \(the first is example 0"),
    (lambda m, x, y: label_issues.find_label_issues(m, x), "needs the given labels"),
    (lambda m, x, y: label_issues.find_label_issues(m, x[:, :4], y), r"examples of shape \(4, 8, 1\)"),
    (lambda m, x, y: label_issues.find_label_issues(
        m, tf.data.Dataset.from_tensor_slices((x, y + 5)).batch(2)), r"labels outside \[0, 3\)"),
])
def test_bad_input_gets_the_fit_message(call, message):
    x, given = _images(6)
    with pytest.raises(ValueError, match=message):
        call(_causalnl(), x, given)


def test_true_rows_are_the_rows_the_noise_was_drawn_from():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=3000)
    features = rng.normal(size=(3000, 6)) + labels[:, None]
    noisy = noise.make_noisy_labels("idn", labels, 4, 0.4, features=features, seed=3)
    rows = noise.true_transition_rows("idn", labels, 4, 0.4, features=features, seed=3)
    assert rows.shape == (3000, 4)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    assert np.all(rows[np.arange(3000), noisy] > 0)  # every drawn label had probability above zero
    np.testing.assert_allclose(np.mean(noisy != labels), np.mean(1 - rows[np.arange(3000), labels]), atol=0.03)
    symmetric = noise.true_transition_rows("symmetric", labels[:2], 4, 0.3)
    np.testing.assert_allclose(symmetric[0], np.where(np.arange(4) == labels[0], 0.7, 0.1))
    pair = noise.true_transition_rows("pairflip", np.array([3]), 4, 0.3)
    np.testing.assert_allclose(pair, [[0.3, 0, 0, 0.7]])
    np.testing.assert_array_equal(noise.true_transition_rows("idn", labels[:5], 4, 0.0, features=features[:5]),
                                  np.eye(4)[labels[:5]])


def test_flipped_labels_rank_above_clean_ones_after_a_short_fit():
    # Two well separated blobs per class in 2-D, 30% symmetric noise: what a
    # trained CausalNL has learned should put the flipped labels first.
    rng = np.random.default_rng(1)
    clean = rng.integers(0, CLASSES, size=600)
    x = (rng.normal(size=(600, 2)) * 0.4 + np.stack([np.cos(clean * 2.1), np.sin(clean * 2.1)], axis=1) * 3)
    x = x.astype(np.float32)
    noisy = noise.make_noisy_labels("symmetric", clean, CLASSES, 0.3, seed=1)
    model = _causalnl(shape=(2,), forget_rate=0.3, ramp_epochs=2)
    model.compile(optimizer="adam")
    model.fit(x, noisy, batch_size=64, epochs=8, verbose=0)
    issues = label_issues.find_label_issues(model, x, noisy)
    flipped = noisy != clean
    # AUROC: the chance that a flipped label scores above a clean one.
    ranks = np.argsort(np.argsort(issues.score)) + 1
    auroc = (ranks[flipped].sum() - flipped.sum() * (flipped.sum() + 1) / 2) / (flipped.sum() * (~flipped).sum())
    assert auroc > 0.9, auroc
    assert 0.15 < issues.noise_rate < 0.45, issues.noise_rate


def test_the_command_writes_the_ranked_csv_and_the_picture(tmp_path, cli_run):
    assert cli_run.done.returncode == 0, cli_run.done.stderr[-3000:]
    workdir = tmp_path / "run"
    shutil.copytree(cli_run.workdir, workdir)
    command = [sys.executable, str(ROOT / "scripts" / "label_issues.py"), "--workdir", str(workdir), "--top=8"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "64 training labels scored (posterior)" in done.stdout
    assert "against the known clean labels" in done.stdout
    with open(workdir / "label_issues.csv") as f:
        rows = list(csv.DictReader(f))
    given = np.load(workdir / "noisy_labels.npy")
    assert len(rows) == 64 and [int(r["given_label"]) for r in rows] == given.tolist()
    assert list(rows[0])[-1] == "clean_label" and "t9" in rows[0]
    by_rank = sorted(rows, key=lambda r: int(r["rank"]))
    scores = [float(r["score"]) for r in by_rank]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    image = matplotlib.image.imread(workdir / "pictures" / "label_issues.png")
    assert image.shape[0] > 100 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05  # images drawn, not a blank page

    missing = subprocess.run([sys.executable, str(ROOT / "scripts" / "label_issues.py"), "--workdir",
                              str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=180)
    assert missing.returncode == 1 and "error: There is no work directory" in missing.stderr


def test_reliability_bins_the_score_against_the_known_wrong_labels():
    score = np.array([0.05, 0.05, 0.15, 0.95, 0.95, 1.0])
    wrong = np.array([False, False, True, True, False, True])
    table = label_issues.reliability(score, wrong, bins=10)
    assert table == [(2, pytest.approx(0.05), 0.0), (1, pytest.approx(0.15), 1.0), (3, pytest.approx(2.9 / 3), 2 / 3)]
    # |0.05 - 0| * 2 + |0.15 - 1| * 1 + |0.9667 - 0.6667| * 3, over 6 examples
    assert label_issues.calibration_error(score, wrong, bins=10) == pytest.approx((0.1 + 0.85 + 0.9) / 6)
    calibrated = np.repeat([0.25, 0.75], 4)
    assert label_issues.calibration_error(calibrated, np.array([1, 0, 0, 0, 1, 1, 1, 0], bool)) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"score and wrong must be two \(N,\) arrays, got shapes \(6,\) and \(5,\)"):
        label_issues.reliability(score, wrong[:5])
