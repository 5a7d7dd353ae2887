"""Tests for tf_causalnl.noise: label-noise generators and their reports."""

import dataclasses
import json
import math

import numpy as np
import pytest

from tf_causalnl import noise

RATES = [0.1, 0.2, 0.3, 0.4, 0.45, 0.5]
NUM_CLASSES = 10
N = 20_000


@pytest.fixture(scope="module")
def data():
    """Uint8-like features (0-255) and balanced clean labels, as in the paper."""
    rng = np.random.default_rng(123)
    features = rng.integers(0, 256, size=(N, 64)).astype(np.float64)
    labels = np.arange(N) % NUM_CLASSES
    return features, labels


def _noisy(noise_type, data, rate, seed=0, **kwargs):
    features, labels = data
    return noise.make_noisy_labels(
        noise_type, labels, NUM_CLASSES, rate, features=features, seed=seed, **kwargs
    )


def _truncated_normal_mean(mu, sigma=0.1, low=0.0, high=1.0):
    """Mean of Normal(mu, sigma) truncated to [low, high] (closed form)."""
    pdf = lambda t: math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    cdf = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))
    a, b = (low - mu) / sigma, (high - mu) / sigma
    return mu + sigma * (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))


# --- idn_transition_rows: the deterministic maths, against hand computation ---


def test_idn_rows_match_hand_computed_values_three_classes():
    ln3, ln4 = math.log(3.0), math.log(4.0)
    weights = np.zeros((3, 2, 3))
    weights[0] = [[5.0, 0.0, ln3], [0.0, 0.0, 0.0]]
    weights[1] = [[0.0, 0.0, 0.0], [0.0, 9.0, ln4]]
    weights[2] = [[0.5, 0.0, 7.0], [0.0, 1.0, 7.0]]
    features = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    labels = np.array([0, 1, 2])
    flip_rates = np.array([0.4, 0.5, 0.2])
    # Example 0, y=0: scores [5, 0, ln3] -> mask 0 -> softmax over {1, 2} of
    #   [0, ln3] = [1/4, 3/4]; times q=0.4 -> [0.1, 0.3]; class 0 gets 0.6.
    # Example 1, y=1: scores [0, 9, ln4] -> softmax over {0, 2} of [0, ln4] =
    #   [1/5, 4/5]; times q=0.5 -> [0.1, 0.4]; class 1 gets 0.5.
    # Example 2, y=2: scores [2*0.5, 1*1, 2*7+7] = [1, 1, 21] -> softmax over
    #   {0, 1} of [1, 1] = [1/2, 1/2]; times q=0.2 -> [0.1, 0.1]; class 2: 0.8.
    expected = np.array([[0.6, 0.1, 0.3], [0.1, 0.5, 0.4], [0.1, 0.1, 0.8]])
    rows = noise.idn_transition_rows(features, labels, weights, flip_rates)
    np.testing.assert_allclose(rows, expected, atol=1e-12)


def test_idn_rows_two_classes_put_the_whole_flip_rate_on_the_other_class():
    # With 2 classes the softmax over "the other classes" is [1]: row [1-q, q].
    weights = np.array([[[3.0, -2.0]], [[0.5, 4.0]]])  # (C=2, D=1, C=2)
    rows = noise.idn_transition_rows(
        np.array([[7.0], [-1.0]]), np.array([0, 1]), weights, np.array([0.3, 0.45])
    )
    np.testing.assert_allclose(rows, [[0.7, 0.3], [0.45, 0.55]], atol=1e-12)


def test_idn_rows_are_stable_and_nearly_one_hot_at_raw_pixel_scale():
    weights = np.zeros((3, 2, 3))
    weights[0] = [[0.0, 10.0, 10.0], [0.0, 10.0, 0.0]]
    features = np.array([[255.0, 255.0], [255.0, 0.0]])
    # Example 0: scores [0, 5100, 2550]: exp(5100) overflows without the max
    #   shift; softmax over {1, 2} = [1, e^-2550] ~ [1, 0]: one wrong class.
    # Example 1: scores [0, 2550, 2550]: softmax over {1, 2} = [1/2, 1/2].
    rows = noise.idn_transition_rows(
        features, np.array([0, 0]), weights, np.array([0.4, 0.4])
    )
    np.testing.assert_allclose(rows, [[0.6, 0.4, 0.0], [0.6, 0.2, 0.2]], atol=1e-12)


def test_idn_rows_sum_to_one_and_true_class_keeps_one_minus_flip_rate():
    rng = np.random.default_rng(0)
    features = rng.integers(0, 256, size=(500, 16)).astype(np.uint8)
    labels = rng.integers(0, 5, size=500)
    flip_rates = rng.uniform(0.0, 1.0, size=500)
    weights = rng.standard_normal((5, 16, 5))
    rows = noise.idn_transition_rows(features, labels, weights, flip_rates)
    assert rows.shape == (500, 5)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(rows[np.arange(500), labels], 1.0 - flip_rates)
    assert (rows >= 0.0).all()


# --- generators: determinism, inputs, realised rates ---


@pytest.mark.parametrize("noise_type", sorted(noise.NOISE_TYPES))
def test_same_seed_same_labels_different_seed_different_labels(noise_type, data):
    first = _noisy(noise_type, data, 0.3, seed=7)
    np.testing.assert_array_equal(first, _noisy(noise_type, data, 0.3, seed=7))
    assert (first != _noisy(noise_type, data, 0.3, seed=8)).any()


@pytest.mark.parametrize("noise_type", sorted(noise.NOISE_TYPES))
def test_inputs_are_not_modified_and_output_is_int64(noise_type):
    rng = np.random.default_rng(1)
    features = rng.integers(0, 256, size=(300, 8)).astype(np.uint8)
    labels = rng.integers(0, 3, size=300).astype(np.int32)
    features_copy, labels_copy = features.copy(), labels.copy()
    noisy = noise.make_noisy_labels(noise_type, labels, 3, 0.4, features=features)
    np.testing.assert_array_equal(features, features_copy)
    np.testing.assert_array_equal(labels, labels_copy)
    assert noisy.dtype == np.int64 and noisy.shape == (300,)
    assert (noisy != labels).any()


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("noise_type", ["idn", "symmetric", "pairflip"])
def test_realised_rate_is_within_1_5_points(noise_type, rate, data):
    realised = np.mean(_noisy(noise_type, data, rate) != data[1])
    assert abs(realised - rate) < 0.015


@pytest.mark.parametrize("rate", RATES)
def test_idn_paper_protocol_realises_the_truncated_normal_mean(rate, data):
    # With loc = rate (match_rate=False), P(flip | x_i) = q_i, so the realised
    # rate estimates E[q]: the requested rate from 0.2 up, but about 0.129 at
    # 0.1, where the cut at 0 lifts the mean.
    realised = np.mean(_noisy("idn", data, rate, match_rate=False) != data[1])
    assert abs(realised - _truncated_normal_mean(rate)) < 0.015
    if rate < 0.2:
        assert 0.115 < realised < 0.145


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2, 0.45, 0.5, 0.9])
def test_flip_rate_location_gives_a_truncated_mean_equal_to_the_rate(rate):
    loc = noise.flip_rate_location(rate, 0.1)
    assert abs(_truncated_normal_mean(loc) - rate) < 1e-9
    assert loc < rate if rate < 0.5 else loc >= rate


@pytest.mark.parametrize("rate", RATES)
def test_idn_with_zero_std_hits_the_requested_rate(rate, data):
    realised = np.mean(_noisy("idn", data, rate, std=0.0) != data[1])
    assert abs(realised - rate) < 0.015


@pytest.mark.parametrize("noise_type", sorted(noise.NOISE_TYPES))
def test_rate_zero_leaves_labels_unchanged(noise_type, data):
    np.testing.assert_array_equal(_noisy(noise_type, data, 0.0), data[1])


def test_symmetric_spreads_flips_uniformly_over_the_other_classes(data):
    t = noise.transition_matrix(data[1], _noisy("symmetric", data, 0.45), NUM_CLASSES)
    off_diagonal = t[~np.eye(NUM_CLASSES, dtype=bool)]
    np.testing.assert_allclose(np.diag(t), 0.55, atol=0.04)
    np.testing.assert_allclose(off_diagonal, 0.45 / (NUM_CLASSES - 1), atol=0.02)


def test_pairflip_only_goes_to_the_next_class(data):
    t = noise.transition_matrix(data[1], _noisy("pairflip", data, 0.45), NUM_CLASSES)
    next_class = np.roll(np.eye(NUM_CLASSES), 1, axis=1)  # (i, i+1 mod C)
    assert (t[(next_class == 0) & (np.eye(NUM_CLASSES) == 0)] == 0).all()
    np.testing.assert_allclose(np.diag(t), 0.55, atol=0.04)
    np.testing.assert_allclose(t[next_class == 1], 0.45, atol=0.04)


def test_idn_transition_diagonal_is_one_minus_rate(data):
    t = noise.transition_matrix(data[1], _noisy("idn", data, 0.4), NUM_CLASSES)
    np.testing.assert_allclose(np.diag(t), 0.6, atol=0.04)
    assert (t[~np.eye(NUM_CLASSES, dtype=bool)] > 0).sum() > NUM_CLASSES


def test_idn_at_raw_pixel_scale_sends_an_instance_to_one_wrong_class():
    # 2,000 copies of one image, class 0: its row is nearly one-hot off the
    # diagonal, so every flipped copy lands on the same class. Scaled down to
    # tiny scores, the softmax is near uniform and flips spread out.
    pixels = np.random.default_rng(5).integers(0, 256, size=(1, 64))
    features = np.repeat(pixels.astype(np.float64), 2000, axis=0)
    labels = np.zeros(2000, dtype=np.int64)
    raw = noise.instance_dependent_noise(features, labels, NUM_CLASSES, 0.45)
    tiny = noise.instance_dependent_noise(features * 1e-6, labels, NUM_CLASSES, 0.45)
    assert len(np.unique(raw[raw != 0])) == 1
    assert len(np.unique(tiny[tiny != 0])) == NUM_CLASSES - 1


# --- transition matrix and report ---

CLEAN = np.array([0, 0, 0, 0, 1, 1, 2])
NOISY = np.array([0, 0, 1, 2, 1, 0, 2])


def test_transition_matrix_rows_are_clean_classes_and_empty_class_is_zero():
    # clean 0 -> noisy [0, 0, 1, 2]; clean 1 -> [1, 0]; clean 2 -> [2]; no 3.
    expected = [
        [0.5, 0.25, 0.25, 0.0],
        [0.5, 0.5, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
    np.testing.assert_allclose(noise.transition_matrix(CLEAN, NOISY, 4), expected)


def test_noise_report_rate_and_json_ready_dict():
    report = noise.noise_report(CLEAN, NOISY, 4)
    assert report.realized_rate == pytest.approx(3 / 7)  # positions 2, 3, 5
    as_dict = report.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert type(as_dict["realized_rate"]) is float
    assert as_dict["transition"][0] == [0.5, 0.25, 0.25, 0.0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.realized_rate = 0.0


# --- validation ---

GOOD_LABELS = np.array([0, 1, 2, 1])
GOOD_FEATURES = np.ones((4, 3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(noise_type="gaussian"),
            r"unknown noise_type 'gaussian'.*'idn', 'pairflip', 'symmetric'",
        ),
        (dict(rate=1.0), r"rate must be in \[0, 1\), got 1.0"),
        (dict(rate=45), r"rate must be in \[0, 1\).*not a percentage"),
        (dict(rate=-0.1), r"rate must be in \[0, 1\)"),
        (dict(labels=np.array([0, 1, 3, 1])), r"= \[0, 3\), found values in \[0, 3\]"),
        (dict(labels=np.array([0, -1, 2, 1])), r"must lie in \[0, num_classes\)"),
        (dict(labels=np.eye(4, 3)), r"1-D array of integer class ids.*argmax"),
        (dict(labels=np.array([0.0, 1.0, 2.0, 1.0])), r"integer class ids.*float64"),
        (dict(num_classes=1), r"num_classes must be at least 2, got 1"),
        (dict(features=None), r"features are required for 'idn'"),
        (dict(features=np.ones((3, 3))), r"features has 3 rows but labels has 4"),
        (dict(features=np.ones((4, 2, 2))), r"2-D \(N, D\), got shape \(4, 2, 2\)"),
        (dict(std=-0.1), r"std must be in \[0, 1\], got -0.1"),
        (dict(features=np.full((4, 3), np.nan)), r"not finite.*NaN/inf"),
    ],
)
def test_make_noisy_labels_rejects_bad_arguments(kwargs, match):
    args = dict(noise_type="idn", labels=GOOD_LABELS, num_classes=3, rate=0.2)
    args.update(features=GOOD_FEATURES)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        noise.make_noisy_labels(**args)


@pytest.mark.parametrize("noise_type", ["symmetric", "pairflip"])
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rate=1.0), r"rate must be in \[0, 1\)"),
        (dict(labels=np.array([0, 1, 5])), r"must lie in \[0, num_classes\)"),
        (dict(num_classes=1), r"num_classes must be at least 2"),
    ],
)
def test_other_generators_validate_too(noise_type, kwargs, match):
    args = dict(labels=np.array([0, 1, 2]), num_classes=3, rate=0.2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        noise.make_noisy_labels(noise_type, **args)


def test_report_rejects_mismatched_or_empty_labels():
    with pytest.raises(ValueError, match=r"same length, got 3 and 2"):
        noise.transition_matrix([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match=r"noisy must lie in \[0, num_classes\)"):
        noise.noise_report([0, 1], [0, 4], 3)
    with pytest.raises(ValueError, match=r"zero examples"):
        noise.noise_report([], [], 3)
