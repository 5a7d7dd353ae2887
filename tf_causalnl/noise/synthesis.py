"""Noisy labels by name: class-conditional noise (symmetric, pair flip) and the dispatch to IDN.

`make_noisy_labels(type, ...)` makes the noise a config names;
`true_transition_rows` gives each example's row of the true transition.
"""

import numpy as np
from numpy.typing import ArrayLike

from tf_causalnl.noise.idn import idn_rows, instance_dependent_noise
from tf_causalnl.noise.labels import check_labels, check_rate


def symmetric_noise(labels: ArrayLike, num_classes: int, rate: float, *, seed: int = 0) -> np.ndarray:
    """Flips each label with probability `rate` to a uniformly chosen other class.

    Returns (N,) int64 noisy labels; the input is not modified.
    """
    return _flip(labels, num_classes, rate, seed,
                 lambda y, rng: (y + rng.integers(1, num_classes, size=y.shape[0])) % num_classes)


def pair_flip_noise(labels: ArrayLike, num_classes: int, rate: float, *, seed: int = 0) -> np.ndarray:
    """Flips each label with probability `rate` to the next class, (y + 1) % C.

    Returns (N,) int64 noisy labels; the input is not modified.
    """
    return _flip(labels, num_classes, rate, seed, lambda y, rng: (y + 1) % num_classes)


def _flip(labels, num_classes, rate, seed, flipped_to) -> np.ndarray:
    """Class-conditional noise: each label flips with probability `rate`, to `flipped_to(labels, rng)`."""
    labels = check_labels(labels, num_classes)
    check_rate(rate)
    rng = np.random.default_rng(seed)
    flip = rng.random(labels.shape[0]) < rate
    return np.where(flip, flipped_to(labels, rng), labels)


NOISE_TYPES = {
    "idn": instance_dependent_noise,
    "symmetric": symmetric_noise,
    "pairflip": pair_flip_noise,
}


def make_noisy_labels(noise_type: str, labels: ArrayLike, num_classes: int, rate: float, *,
                      features: ArrayLike | None = None, std: float = 0.1, seed: int = 0,
                      match_rate: bool = True) -> np.ndarray:
    """Corrupts `labels` with the generator named `noise_type` in `NOISE_TYPES`.

    Args:
        noise_type: "idn", "symmetric" or "pairflip".
        labels, num_classes, rate, seed: as for the generators.
        features: (N, D) features, required for "idn", ignored otherwise.
        std: spread of the per-example flip rate, "idn" only.
        match_rate: see `instance_dependent_noise`, "idn" only.

    Returns:
        (N,) int64 noisy labels; the inputs are not modified.

    Raises:
        ValueError: unknown noise type or invalid arguments.
    """
    generator = _generator(noise_type)
    if generator is instance_dependent_noise:
        return generator(
            features, labels, num_classes, rate, std=std, seed=seed, match_rate=match_rate
        )
    return generator(labels, num_classes, rate, seed=seed)


def true_transition_rows(noise_type: str, labels: ArrayLike, num_classes: int, rate: float, *,
                         features: ArrayLike | None = None, std: float = 0.1, seed: int = 0,
                         match_rate: bool = True) -> np.ndarray:
    """Each example's true noisy-label distribution P(Y~ | x_i, Y = labels[i]).

    The rows `make_noisy_labels` drew from with the same arguments: the truth
    an estimated per-example transition T(x) is scored against. For "idn"
    row i is `idn_transition_rows` with the generator's own flip rates and
    weights; for "symmetric" 1 - rate at the clean class and rate / (C - 1)
    elsewhere; for "pairflip" 1 - rate at y and rate at (y + 1) % C.

    Returns:
        (N, C) float64 array; each row sums to 1.
    """
    if _generator(noise_type) is instance_dependent_noise:
        _, rows = idn_rows(features, labels, num_classes, rate, std, seed, match_rate)
        return np.eye(num_classes)[check_labels(labels, num_classes)] if rows is None else rows
    labels = check_labels(labels, num_classes)
    check_rate(rate)
    index = np.arange(labels.shape[0])
    if NOISE_TYPES[noise_type] is symmetric_noise:
        rows = np.full((labels.shape[0], num_classes), rate / (num_classes - 1))
    else:
        rows = np.zeros((labels.shape[0], num_classes))
        rows[index, (labels + 1) % num_classes] = rate
    rows[index, labels] = 1.0 - rate
    return rows


def _generator(noise_type: str):
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"unknown noise_type {noise_type!r}; valid names are {sorted(NOISE_TYPES)}.")
    return NOISE_TYPES[noise_type]
