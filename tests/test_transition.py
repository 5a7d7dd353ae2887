"""Tests for tf_causalnl.transition: anchor-point estimates of T and the noise rate."""

import json

import keras
import numpy as np
import pytest

from tf_causalnl import networks, noise, transition
from tf_causalnl.models.ce import NoisyLabelClassifier
from tf_causalnl.models.estimate import _KeepBestWeights

# Column i of T is largest at row i, so among mixtures of rows of T the anchor
# (row i itself) has the largest class-i probability.
T = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.05, 0.7]])
PRIOR = np.array([0.5, 0.3, 0.2])
# T^T PRIOR: [0.35 + 0.03 + 0.05, 0.10 + 0.24 + 0.01, 0.05 + 0.03 + 0.14].
NOISY_PRIOR = np.array([0.43, 0.35, 0.22])
# sum_i PRIOR_i (1 - T_ii) = 0.5 * 0.3 + 0.3 * 0.2 + 0.2 * 0.3.
FLIP_RATE = 0.27


def _mixtures(n, seed=0):
    """n noisy-label posteriors w @ T with w ~ Dirichlet(1, 1, 1): never an anchor."""
    return np.random.default_rng(seed).dirichlet(np.ones(3), size=n) @ T


# --- anchor_transition_matrix ---

# No ties in any column; row 4 sums to 0.9995 (allowed, renormalised).
TABLE = np.array(
    [
        [0.80, 0.15, 0.05],
        [0.60, 0.30, 0.10],
        [0.10, 0.70, 0.20],
        [0.25, 0.20, 0.55],
        [0.30, 0.05, 0.6495],
    ]
)


@pytest.mark.parametrize(
    "percentile, anchors",
    [
        # Rank ceil(p / 100 * 4) in each column sorted ascending:
        # column 0: rows 2, 3, 4, 1, 0; column 1: 4, 0, 3, 1, 2; column 2: 0, 1, 2, 3, 4.
        (100.0, [0, 2, 4]),  # rank 4, the argmax
        (97.0, [0, 2, 4]),  # rank ceil(3.88) = 4
        (75.0, [1, 1, 3]),  # rank 3
        (50.0, [4, 3, 2]),  # rank 2
        (1.0, [3, 0, 1]),  # rank ceil(0.04) = 1
    ],
)
def test_anchor_rows_are_the_hand_named_examples(percentile, anchors):
    t = transition.anchor_transition_matrix(TABLE, percentile)
    expected = TABLE[anchors] / TABLE[anchors].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert t.dtype == np.float64 and t.shape == (3, 3)


def test_percentile_97_skips_overconfident_outliers_the_maximum_takes():
    # 101 rows: 83 mixtures, 5 exact anchors per class, 1 one-hot outlier per
    # class. Sorted column i: the outlier (1.0) at rank 100, the anchors at
    # ranks 95-99; percentile 97 reads rank ceil(0.97 * 100) = 97.
    table = np.concatenate([_mixtures(83), np.repeat(T, 5, axis=0), np.eye(3)])
    np.testing.assert_allclose(transition.anchor_transition_matrix(table, 97.0), T, atol=1e-12)
    np.testing.assert_allclose(transition.anchor_transition_matrix(table, 100.0), np.eye(3))


# --- clean_class_prior and average_flip_rate ---


def test_clean_prior_inverts_an_invertible_transition():
    np.testing.assert_allclose(T.T @ PRIOR, NOISY_PRIOR, atol=1e-15)
    np.testing.assert_allclose(transition.clean_class_prior(T, NOISY_PRIOR), PRIOR, atol=1e-12)


def test_clean_prior_is_clipped_at_zero_and_renormalised():
    # T = [[.8, .2], [.2, .8]]: noisy_0 = 0.2 + 0.6 pi_0, so noisy [0.1, 0.9]
    # gives pi = [-1/6, 7/6], clipped to [0, 7/6], renormalised to [0, 1].
    t = np.array([[0.8, 0.2], [0.2, 0.8]])
    np.testing.assert_allclose(transition.clean_class_prior(t, [0.1, 0.9]), [0.0, 1.0], atol=1e-12)


@pytest.mark.parametrize(
    "singular",
    [
        np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]),  # two equal rows
        np.full((3, 3), 1.0 / 3.0),  # labels carry no information at all
    ],
)
def test_clean_prior_falls_back_to_the_noisy_prior_for_a_singular_transition(singular):
    prior = transition.clean_class_prior(singular, NOISY_PRIOR)
    np.testing.assert_array_equal(prior, NOISY_PRIOR)


def test_average_flip_rate_by_hand():
    # 0.25 * (1 - 0.9) + 0.75 * (1 - 0.7) = 0.025 + 0.225.
    t = np.array([[0.9, 0.1], [0.3, 0.7]])
    assert transition.average_flip_rate(t, [0.25, 0.75]) == pytest.approx(0.25, abs=1e-15)
    assert transition.average_flip_rate(T, PRIOR) == pytest.approx(FLIP_RATE, abs=1e-15)
    assert transition.average_flip_rate(np.eye(3), PRIOR) == 0.0


# --- estimate_from_probabilities ---


def test_exact_anchors_recover_the_transition_prior_and_flip_rate():
    # 340 mixtures and 20 exact anchors per class: n = 400, percentile 97
    # reads rank ceil(0.97 * 399) = 388, inside the anchors' ranks 380-399.
    probabilities = np.concatenate([_mixtures(340), np.repeat(T, 20, axis=0)])
    # Only the noisy class counts matter: 172, 140 and 88 of 400 = NOISY_PRIOR.
    labels = np.random.default_rng(1).permutation(np.repeat([0, 1, 2], [172, 140, 88]))
    estimate = transition.estimate_from_probabilities(probabilities, labels, 3)
    np.testing.assert_allclose(estimate.transition, T, atol=1e-12)
    np.testing.assert_allclose(estimate.noisy_prior, NOISY_PRIOR, atol=1e-15)
    np.testing.assert_allclose(estimate.clean_prior, PRIOR, atol=1e-12)
    assert estimate.noise_rate == pytest.approx(FLIP_RATE, abs=1e-12)


def test_noise_estimate_round_trips_through_json():
    estimate = transition.estimate_from_probabilities(TABLE, [0, 1, 2, 2, 0], 3, 100.0)
    as_dict = estimate.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert type(as_dict["noise_rate"]) is float
    again = transition.NoiseEstimate.from_dict(as_dict)
    for field in ("transition", "noisy_prior", "clean_prior"):
        np.testing.assert_array_equal(getattr(again, field), getattr(estimate, field))
    assert again.noise_rate == estimate.noise_rate


# --- estimate_noise: which weights it keeps, and end to end ---


def _biased_classifier():
    """x -> logits x W + b with W = 0, b = [0, 1]: predicts class 1 at first."""
    x_in = keras.Input((1,))
    bias = keras.initializers.Constant([0.0, 1.0])
    logits = keras.layers.Dense(2, kernel_initializer="zeros", bias_initializer=bias)(x_in)
    return keras.Model(x_in, logits)


def _early_stopping():
    return keras.callbacks.EarlyStopping(
        "val_accuracy", patience=9, mode="max", restore_best_weights=True
    )


@pytest.mark.parametrize(
    "callback, kept_epoch",
    [
        (_KeepBestWeights, 2),
        # Keras 3.15 restores without an early stop too, but keeps the first tie.
        (_early_stopping, 0),
    ],
)
def test_the_best_validation_epoch_is_restored_latest_among_ties(callback, kept_epoch):
    # Training labels are all 0, validation labels all 1: one SGD step per
    # epoch lowers the logit gap z1 - z0 from 1 by about 0.29, so validation
    # accuracy is 1 after epochs 0, 1, 2 and 0 from epoch 3 to the last (5).
    model = NoisyLabelClassifier(_biased_classifier())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: snapshots.append((logs["val_accuracy"], model.get_weights()))
    )
    ones = np.ones((4, 1), np.float32)
    model.fit(
        ones,
        np.zeros(4, np.int64),
        batch_size=4,
        epochs=6,
        verbose=0,
        callbacks=[record, callback()],
        validation_data=(ones, np.ones(4, np.int64)),
    )
    assert [accuracy for accuracy, _ in snapshots] == [1, 1, 1, 0, 0, 0]
    for kept, final in zip(snapshots[kept_epoch][1], model.get_weights()):
        np.testing.assert_array_equal(final, kept)


def test_estimate_noise_end_to_end_on_three_blobs():
    # Blobs of std 1 at radius 4 (centres 6.9 apart), 40 % symmetric noise.
    # Percentile 90 with 3 classes skips the top 30 % of a class, as 97 does
    # on CIFAR-10. With data seeds 0-11 (and Keras seeds 1234-1245) this
    # configuration measured estimate - realised rate in [-0.051, +0.006],
    # mean -0.021 (at percentile 97: [-0.129, -0.040], mean -0.077: the
    # anchors lean to confident examples). Tolerance 0.08: 0.03 of margin.
    rng = np.random.default_rng(0)
    angles = np.deg2rad([90.0, 210.0, 330.0])
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    clean = np.arange(300) % 3
    x = (centres[clean] + rng.normal(size=(300, 2))).astype(np.float32)
    noisy = noise.symmetric_noise(clean, 3, 0.4, seed=0)
    realised = np.mean(noisy != clean)
    classifier = networks.build_mlp_classifier((2,), 3)
    before = [w.copy() for w in classifier.get_weights()]

    estimate = transition.estimate_noise(
        classifier, x, noisy, epochs=10, batch_size=32, learning_rate=3e-3, percentile=90.0
    )

    assert abs(estimate.noise_rate - realised) < 0.08
    assert np.all(np.diag(estimate.transition) > 0.45)
    np.testing.assert_allclose(estimate.noisy_prior, np.bincount(noisy) / 300)
    for original, after in zip(before, classifier.get_weights()):
        np.testing.assert_array_equal(after, original)


def test_estimate_noise_takes_uint8_images_and_no_holdout():
    # No validation split: the final weights are used. Only the plumbing is
    # checked here (one epoch on random images learns nothing).
    x = np.random.default_rng(0).integers(0, 256, size=(30, 4, 4, 1), dtype=np.uint8)
    labels = np.arange(30) % 3
    classifier = networks.build_mlp_classifier((4, 4, 1), 3, hidden_units=(8,))
    estimate = transition.estimate_noise(classifier, x, labels, epochs=1, holdout=0.0)
    np.testing.assert_allclose(estimate.transition.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(estimate.noisy_prior, [1 / 3] * 3)
    assert 0.0 <= estimate.noise_rate <= 1.0


def test_estimate_noise_with_members_is_the_mean_of_that_many_estimates_in_a_row():
    x = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    labels = np.arange(60) % 3
    classifier = networks.build_mlp_classifier((2,), 3, hidden_units=(8,))
    keras.utils.set_random_seed(5)
    one_by_one = [transition.estimate_noise(classifier, x, labels, epochs=2, holdout=0.0) for _ in range(2)]
    keras.utils.set_random_seed(5)
    mean = transition.estimate_noise(classifier, x, labels, epochs=2, holdout=0.0, members=2)
    assert one_by_one[0].noise_rate != one_by_one[1].noise_rate  # two initialisations, two estimates
    assert mean.noise_rate == pytest.approx((one_by_one[0].noise_rate + one_by_one[1].noise_rate) / 2)
    np.testing.assert_allclose(mean.transition, (one_by_one[0].transition + one_by_one[1].transition) / 2)
    with pytest.raises(ValueError, match="members must be a whole number of at least 1, got 0"):
        transition.estimate_noise(classifier, x, labels, members=0)


# --- validation ---


@pytest.mark.parametrize(
    "probabilities, percentile, match",
    [
        (np.full(3, 1 / 3), 97.0, r"2-D \(examples, classes\), got shape \(3,\)"),
        (np.array([[0.5, 0.5], [0.6, 0.6], [1.0, 0.0]]), 97.0, r"row 1 sums to 1.2.*softmax"),
        (np.array([[2.0, -1.0], [0.5, 0.5]]), 97.0, r"finite and non-negative"),
        (np.full((2, 3), 1 / 3), 97.0, r"as many examples as classes.*got 2 examples for 3"),
        (np.ones((4, 1)), 97.0, r"at least 2 classes"),
        (TABLE, 0.0, r"percentile must be in \(0, 100\], got 0.0"),
        (TABLE, 101.0, r"percentile must be in \(0, 100\]"),
    ],
)
def test_anchor_matrix_rejects_bad_arguments(probabilities, percentile, match):
    with pytest.raises(ValueError, match=match):
        transition.anchor_transition_matrix(probabilities, percentile)


@pytest.mark.parametrize(
    "labels, num_classes, match",
    [
        ([0, 1, 3, 0, 0], 3, r"noisy_labels must lie in \[0, 3\), found values in \[0, 3\]"),
        ([0, 1, 2], 3, r"1-D array of 5 integer class ids"),
        ([0.0, 1.0, 2.0, 0.0, 1.0], 3, r"integer class ids.*float64"),
        ([0, 1, 2, 0, 1], 4, r"probabilities has 3 columns but num_classes is 4"),
    ],
)
def test_estimate_from_probabilities_rejects_bad_labels(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        transition.estimate_from_probabilities(TABLE, np.array(labels), num_classes)


def test_prior_functions_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"noisy_prior must be non-negative and sum to 1"):
        transition.clean_class_prior(T, [43, 35, 22])
    with pytest.raises(ValueError, match=r"clean_prior must have shape \(3,\)"):
        transition.average_flip_rate(T, [0.5, 0.5])
    with pytest.raises(ValueError, match=r"square \(C, C\) matrix.*\(2, 3\)"):
        transition.clean_class_prior(T[:2], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"missing \['noise_rate'\]"):
        transition.NoiseEstimate.from_dict(
            {"transition": T, "noisy_prior": PRIOR, "clean_prior": PRIOR}
        )
    with pytest.raises(ValueError, match=r"\(C, C\) transition and two \(C,\) priors"):
        transition.NoiseEstimate(T, PRIOR[:2], PRIOR, 0.1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(holdout=1.0), r"holdout must be in \[0, 1\), got 1.0"),
        (dict(holdout=10), r"holdout must be in \[0, 1\).*not a percentage"),
        (dict(percentile=0.0), r"percentile must be in \(0, 100\]"),
        (dict(epochs=0), r"epochs and batch_size must be at least 1"),
        (dict(noisy_labels=np.array([0, 1, 5, 0])), r"must lie in \[0, 3\)"),
        (dict(noisy_labels=np.array([0, 1, 2])), r"1-D array of 4 integer class ids"),
        (dict(x=np.zeros((2, 2)), noisy_labels=np.array([0, 1])), r"got 2 examples for 3 classes"),
        (dict(classifier="softmax"), r"applies a softmax"),
    ],
)
def test_estimate_noise_rejects_bad_arguments_before_training(kwargs, match):
    args = dict(x=np.zeros((4, 2)), noisy_labels=np.array([0, 1, 2, 0]))
    args.update(kwargs)
    classifier = networks.build_mlp_classifier((2,), 3)
    if args.pop("classifier", None) == "softmax":
        softmax = keras.layers.Dense(3, activation="softmax")
        classifier = keras.Sequential([keras.Input((2,)), softmax])
    with pytest.raises(ValueError, match=match):
        transition.estimate_noise(classifier, **args)
