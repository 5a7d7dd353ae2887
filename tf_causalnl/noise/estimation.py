"""Noise estimates from a classifier's probabilities: anchor points, the clean prior, the flip rate.

The class's most confidently predicted examples (its anchor points, at a
high percentile) are probably of that class, and their predicted noisy-label
probabilities become a row of the transition matrix T (Patrini et al., CVPR
2017; Xia et al., NeurIPS 2019). Pure NumPy: the classifier that gives the
probabilities is trained by `tf_causalnl.models.estimate`.
"""

import dataclasses
import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from tf_causalnl.noise.labels import ROW_SUM_TOLERANCE, check_labels, check_transition


# A transition matrix whose smallest singular value is below this fraction of
# its largest is treated as singular by `clean_class_prior`.
SINGULAR_RCOND = 1e-6


@dataclasses.dataclass
class NoiseEstimate:
    """A transition matrix and noise rate estimated from noisy labels only.

    Attributes:
        transition: (C, C) P(noisy = j | clean = i); rows clean, columns noisy.
        noisy_prior: (C,) observed frequencies of the noisy classes.
        clean_prior: (C,) estimated clean class prior (`clean_class_prior`).
        noise_rate: estimated average flip rate (`average_flip_rate`).
    """

    transition: np.ndarray
    noisy_prior: np.ndarray
    clean_prior: np.ndarray
    noise_rate: float

    def __post_init__(self):
        self.transition = np.asarray(self.transition, dtype=np.float64)
        self.noisy_prior = np.asarray(self.noisy_prior, dtype=np.float64)
        self.clean_prior = np.asarray(self.clean_prior, dtype=np.float64)
        self.noise_rate = float(self.noise_rate)
        c = self.transition.shape[0] if self.transition.ndim == 2 else -1
        if (
            self.transition.shape != (c, c)
            or self.noisy_prior.shape != (c,)
            or self.clean_prior.shape != (c,)
        ):
            raise ValueError(
                "NoiseEstimate needs a (C, C) transition and two (C,) priors, got shapes "
                f"{self.transition.shape}, {self.noisy_prior.shape} and {self.clean_prior.shape}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Returns plain Python floats and lists, ready for `json.dumps`."""
        return {
            "transition": self.transition.tolist(),
            "noisy_prior": self.noisy_prior.tolist(),
            "clean_prior": self.clean_prior.tolist(),
            "noise_rate": float(self.noise_rate),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NoiseEstimate":
        """Inverse of `to_dict`."""
        missing = sorted({f.name for f in dataclasses.fields(cls)} - set(d))
        if missing:
            raise ValueError(
                f"NoiseEstimate.from_dict is missing {missing}; pass a dict made by to_dict()."
            )
        return cls(d["transition"], d["noisy_prior"], d["clean_prior"], d["noise_rate"])


def check_percentile(percentile: float) -> None:
    if not 0.0 < percentile <= 100.0:  # Also rejects NaN.
        raise ValueError(
            f"percentile must be in (0, 100], got {percentile}; use 100 for the most "
            "confident example or 97 (T-Revision) to skip outliers."
        )


def _check_probabilities(probabilities: ArrayLike) -> np.ndarray:
    """Returns an (n, C) float64 table after checking it holds probability rows."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(
            f"probabilities must be 2-D (examples, classes), got shape {p.shape}; "
            "pass the classifier's predict() output on the whole training set."
        )
    n, c = p.shape
    if c < 2:
        raise ValueError(f"probabilities need at least 2 classes (columns), got {c}.")
    if n < c:
        raise ValueError(
            f"need at least as many examples as classes to find anchors, got {n} "
            f"examples for {c} classes; estimate on the whole training set."
        )
    if not np.isfinite(p).all() or (p < 0.0).any():
        raise ValueError("probabilities must be finite and non-negative (NaN, inf or < 0 found).")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > ROW_SUM_TOLERANCE:
        raise ValueError(
            f"each row of probabilities must sum to 1, but row {worst} sums to "
            f"{sums[worst]:.6g}; apply a softmax to logits first."
        )
    return p


def _check_prior(prior: ArrayLike, num_classes: int, name: str) -> np.ndarray:
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (num_classes,):
        raise ValueError(
            f"{name} must have shape ({num_classes},) to match the transition matrix, "
            f"got {prior.shape}."
        )
    if not np.isfinite(prior).all() or (prior < 0.0).any() or abs(prior.sum() - 1.0) > 1e-6:
        raise ValueError(
            f"{name} must be non-negative and sum to 1, got {prior.tolist()}; "
            "divide class counts by their total."
        )
    return prior


def anchor_transition_matrix(probabilities: ArrayLike, percentile: float = 97.0) -> np.ndarray:
    """Row i of T is P(noisy | x) at the anchor of class i (Patrini et al. 2017).

    The anchor of class i is the example of rank ceil(percentile / 100 * (n - 1))
    when column i is sorted in ascending order (rank 0 is the smallest, so
    percentile 100 takes the largest value; numpy's "higher" percentile, always
    a value that occurs in the column). Ties go to the example that comes later.

    Args:
        probabilities: (n, C) estimates of P(noisy | x), rows summing to 1,
            from a classifier trained with cross-entropy on the noisy labels.
        percentile: in (0, 100]. 97 (T-Revision) skips the top 3 % of each
            column, where an overfitted network's outliers sit.

    Returns:
        (C, C) float64 matrix, rows clean classes, each row normalised to sum 1.

    Raises:
        ValueError: a table that is not (n, C) probabilities with n >= C >= 2,
            or a percentile outside (0, 100].
    """
    check_percentile(percentile)
    p = _check_probabilities(probabilities)
    n, c = p.shape
    # The small shift keeps float error from bumping an exact rank up by one
    # (97 / 100 * 100 is 97.00000000000001).
    rank = min(n - 1, math.ceil(percentile / 100.0 * (n - 1) - 1e-9))
    anchors = [np.argsort(p[:, i], kind="stable")[rank] for i in range(c)]
    transition = p[anchors]
    return transition / transition.sum(axis=1, keepdims=True)


def clean_class_prior(transition: ArrayLike, noisy_prior: ArrayLike) -> np.ndarray:
    """Clean class prior pi solving noisy_prior = T^T pi, by least squares.

    The solution is clipped at 0 and renormalised to sum 1 (an estimated T
    need not be consistent with the observed frequencies). When T is
    numerically singular (smallest singular value below `SINGULAR_RCOND` times
    the largest), or nothing positive survives the clipping, the clean prior
    is not identifiable from T and this falls back to a copy of `noisy_prior`.

    Args:
        transition: (C, C), rows clean classes, columns noisy classes.
        noisy_prior: (C,) observed noisy class frequencies, summing to 1.

    Returns:
        (C,) float64 non-negative prior summing to 1.
    """
    t = check_transition(transition)
    noisy_prior = _check_prior(noisy_prior, t.shape[0], "noisy_prior")
    singular_values = np.linalg.svd(t, compute_uv=False)
    if singular_values[-1] <= SINGULAR_RCOND * singular_values[0]:
        return noisy_prior.copy()
    prior = np.clip(np.linalg.lstsq(t.T, noisy_prior, rcond=None)[0], 0.0, None)
    total = prior.sum()
    if not np.isfinite(total) or total <= 0.0:
        return noisy_prior.copy()
    return prior / total


def average_flip_rate(transition: ArrayLike, clean_prior: ArrayLike) -> float:
    """The expected fraction of flipped labels, sum_i pi_i (1 - T[i, i]).

    Args:
        transition: (C, C), rows clean classes, columns noisy classes.
        clean_prior: (C,) clean class prior pi, summing to 1.
    """
    t = check_transition(transition)
    clean_prior = _check_prior(clean_prior, t.shape[0], "clean_prior")
    return float(clean_prior @ (1.0 - np.diag(t)))


def estimate_from_probabilities(
    probabilities: ArrayLike,
    noisy_labels: ArrayLike,
    num_classes: int,
    percentile: float = 97.0,
) -> NoiseEstimate:
    """T from anchors, the clean prior and the noise rate, from a probability table.

    Args:
        probabilities: (n, C) estimates of P(noisy | x) (see
            `anchor_transition_matrix`).
        noisy_labels: (n,) observed noisy labels; only their class frequencies
            are used.
        num_classes: C, the number of columns of `probabilities`.
        percentile: anchor percentile, in (0, 100].

    Returns:
        A `NoiseEstimate`.
    """
    p = _check_probabilities(probabilities)
    if p.shape[1] != num_classes:
        raise ValueError(
            f"probabilities has {p.shape[1]} columns but num_classes is {num_classes}."
        )
    labels = check_labels(noisy_labels, num_classes, "noisy_labels", p.shape[0], classes_name=None)
    transition = anchor_transition_matrix(p, percentile)
    noisy_prior = np.bincount(labels, minlength=num_classes) / labels.shape[0]
    clean_prior = clean_class_prior(transition, noisy_prior)
    return NoiseEstimate(
        transition, noisy_prior, clean_prior, average_flip_rate(transition, clean_prior)
    )
