"""Instance-dependent label noise (IDN; Xia et al., NeurIPS 2020), the paper's synthetic noise.

Each example's flip rate is drawn from a truncated normal around the target
rate; its flip probabilities come from a random projection of its features.
"""

import math
import statistics

import numpy as np
from numpy.typing import ArrayLike

from tf_causalnl.noise.labels import check_labels, check_rate, check_std


def idn_transition_rows(
    features: ArrayLike, labels: ArrayLike, weights: ArrayLike, flip_rates: ArrayLike
) -> np.ndarray:
    """Per-example noisy-label distributions P(noisy | x_i, y_i) of Xia et al. 2020.

    For example i with clean label y: scores = features[i] @ weights[y], the
    score of y is set to -inf, a softmax spreads flip_rates[i] over the other
    classes, and class y keeps 1 - flip_rates[i]. Pure and deterministic; the
    maths is done in float64, one class at a time, with the max subtracted
    before exponentiating (raw-pixel scores reach the thousands).

    Args:
        features: (N, D) numbers, used as given (no scaling).
        labels: (N,) clean labels in [0, C).
        weights: (C, D, C); weights[c] projects the features of class c.
        flip_rates: (N,) per-example flip probabilities in [0, 1].

    Returns:
        (N, C) float64 array; each row sums to 1 and row i has 1 - flip_rates[i]
        at labels[i].
    """
    features, labels, weights = map(np.asarray, (features, labels, weights))
    flip_rates = np.asarray(flip_rates, dtype=np.float64)
    num_classes = weights.shape[0]
    rows = np.zeros((labels.shape[0], num_classes), dtype=np.float64)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        scores = features[idx].astype(np.float64) @ weights[c].astype(np.float64)
        scores[:, c] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        probs = np.exp(scores)
        probs *= (flip_rates[idx] / probs.sum(axis=1))[:, None]
        probs[:, c] = 1.0 - flip_rates[idx]
        rows[idx] = probs
    return rows


def flip_rate_location(rate: float, std: float) -> float:
    """The mean of a normal whose truncation to [0, 1] has mean `rate`.

    Truncating Normal(rate, std) to [0, 1] raises its mean when `rate` is
    small (to about 0.129 at rate 0.1 with std 0.1). Solving for the location
    by bisection keeps the requested mean. Rates below about 3 * std / 10 are
    out of reach; there the location stops at rate - 3 * std.
    """
    if std == 0.0 or rate == 0.0:
        return rate
    normal = statistics.NormalDist()

    def truncated_mean(loc: float) -> float:
        low, high = -loc / std, (1.0 - loc) / std
        mass = normal.cdf(high) - normal.cdf(low)
        return loc + std * (normal.pdf(low) - normal.pdf(high)) / mass

    low, high = rate - 3.0 * std, rate + 3.0 * std
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if truncated_mean(middle) < rate else (low, middle)
    return 0.5 * (low + high)


def _truncated_normal(rng: np.random.Generator, loc: float, std: float, n: int) -> np.ndarray:
    """n draws of Normal(loc, std) restricted to [0, 1], by batched rejection."""
    if std == 0.0:
        return np.full(n, loc)
    normal = statistics.NormalDist(loc, std)
    accept = max(normal.cdf(1.0) - normal.cdf(0.0), 1e-6)
    kept = np.empty(0)
    while kept.size < n:
        wanted = n - kept.size
        draws = rng.normal(loc, std, size=math.ceil(1.1 * wanted / accept) + 16)
        kept = np.concatenate([kept, draws[(draws >= 0.0) & (draws <= 1.0)][:wanted]])
    return kept


def instance_dependent_noise(
    features: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    rate: float,
    *,
    std: float = 0.1,
    seed: int = 0,
    match_rate: bool = True,
) -> np.ndarray:
    """Instance-dependent label noise (Xia et al. 2020), as used by CausalNL.

    With `rng = np.random.default_rng(seed)`, in this order: flip rates
    q_i ~ Normal(loc, std) truncated to [0, 1] (rejection sampling); weights
    W ~ standard normal of shape (C, D, C), stored as float32; rows from
    `idn_transition_rows`; one uniform per example picks the noisy label from
    its row by inverse CDF (a zero-probability class is never picked).

    Feature scale matters, and this function does not scale `features`: the
    caller chooses and should state the choice. The public CausalNL code feeds
    raw pixel values (0-255, flattened: 784 for FashionMNIST, 3,072 for CIFAR).
    The scores are then in the thousands and the softmax over the other
    classes is nearly one-hot: a mislabelled example goes to a single class
    fixed by its pixels. Smaller features soften the softmax (by how much
    depends on D; pixels / 255 on FashionMNIST are still mostly peaked).

    Realised rate: P(flip | x_i) is exactly q_i, so the expected noise rate is
    the mean of the truncated normal. With loc = rate (the paper's protocol,
    `match_rate=False`) the cut at 0 raises that mean for small rates: 0.129
    at rate 0.1, 0.206 at 0.2, no change at 0.5. By default `loc` is instead
    solved so that the mean is `rate` (`flip_rate_location`); the shape of the
    noise is unchanged and the shift is below 0.006 for rates from 0.2 up.
    `rate=0` returns the labels unchanged. Use std=0 for a flip rate of
    exactly `rate` on every example.

    Args:
        features: (N, D) numbers, one row per example (flatten images first).
        labels: (N,) clean integer labels in [0, num_classes).
        num_classes: number of classes C, at least 2.
        rate: mean flip rate in [0, 1).
        std: standard deviation of the per-example flip rate, in [0, 1].
        seed: seed of `np.random.default_rng`.
        match_rate: solve the location of the flip-rate distribution so the
            expected noise rate is `rate` (True), or use loc = rate (False).

    Returns:
        (N,) int64 noisy labels; the inputs are not modified.

    Raises:
        ValueError: on bad shapes or ranges, or non-finite features.
    """
    rng, rows = idn_rows(features, labels, num_classes, rate, std, seed, match_rate)
    if rows is None:
        return check_labels(labels, num_classes)
    cdf = np.cumsum(rows, axis=1)
    u = rng.random(len(rows)) * cdf[:, -1]
    return (cdf <= u[:, None]).sum(axis=1).astype(np.int64)


def idn_rows(features, labels, num_classes, rate, std, seed, match_rate):
    """(rng, per-example rows) of `instance_dependent_noise`, the rng left where
    the noisy labels are drawn from; rows is None at rate 0."""
    labels = check_labels(labels, num_classes)
    check_rate(rate)
    check_std(std)
    flatten = "flatten images with images.reshape(len(images), -1)"
    if features is None:
        raise ValueError(f"features are required for 'idn' noise: {flatten}.")
    features = np.asarray(features)
    if features.ndim != 2:
        shape = features.shape
        raise ValueError(f"features must be 2-D (N, D), got shape {shape}; {flatten}.")
    if features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features has {features.shape[0]} rows but labels has {labels.shape[0]}"
            " entries; pass one feature row per label."
        )
    rng = np.random.default_rng(seed)
    if rate == 0.0:
        return rng, None
    n = labels.shape[0]
    loc = flip_rate_location(rate, std) if match_rate else rate
    flip_rates = _truncated_normal(rng, loc, std, n)
    weights = rng.standard_normal(
        (num_classes, features.shape[1], num_classes), dtype=np.float32
    )
    rows = idn_transition_rows(features, labels, weights, flip_rates)
    if not np.isfinite(rows).all():
        raise ValueError("noise probabilities are not finite: features hold NaN/inf.")
    return rng, rows
