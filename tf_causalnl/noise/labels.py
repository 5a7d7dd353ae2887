"""Checks of labels and noise parameters, and the report of the noise a set of labels holds.

Shared by the noise synthesis, the estimates and the pictures.
"""

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def check_labels(labels: ArrayLike, num_classes: int, name: str = "labels", num_examples: int | None = None,
                 classes_name: str | None = "num_classes") -> np.ndarray:
    """Returns `labels` as a new int64 array after checking shape and range.

    The one check of integer class ids, for the noise synthesis, the estimates
    and the pictures. `num_examples`, if given, is the length they must have;
    `classes_name` is what the caller calls the number of classes, if the
    message should name it.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}.")
    labels = np.asarray(labels)
    shape_ok = labels.ndim == 1 if num_examples is None else labels.shape == (num_examples,)
    if not shape_ok or not (labels.size == 0 or labels.dtype.kind in "iu"):
        count = " of" if num_examples is None else f" of {num_examples}"
        each = "" if num_examples is None else " (one per example)"
        raise ValueError(
            f"{name} must be a 1-D array{count} integer class ids{each}, got shape {labels.shape}"
            f" and dtype {labels.dtype}; convert one-hot labels with argmax(axis=1)."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        interval = f"[0, {num_classes})" if classes_name is None else f"[0, {classes_name}) = [0, {num_classes})"
        raise ValueError(
            f"{name} must lie in {interval}, found values in"
            f" [{labels.min()}, {labels.max()}]; pass the right num_classes or remap."
        )
    return labels.astype(np.int64)


def check_rate(rate: float, name: str = "rate") -> None:
    """Refuses a noise rate outside [0, 1) (or NaN); `name` names it in the error."""
    if not 0.0 <= rate < 1.0:
        fix = "give a fraction (0.45), not a percentage (45)"
        raise ValueError(f"{name} must be in [0, 1), got {rate}; {fix}.")


def check_std(std: float, name: str = "std") -> None:
    """Refuses a spread of the IDN flip rate outside [0, 1] (or NaN)."""
    if not 0.0 <= std <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {std}; the paper uses 0.1.")


@dataclasses.dataclass(frozen=True)
class NoiseReport:
    """What a noise generator actually did.

    Attributes:
        realized_rate: fraction of examples whose noisy label differs.
        transition: (C, C) empirical P(noisy = j | clean = i), rows clean.
    """

    realized_rate: float
    transition: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """Returns plain Python floats and lists, ready for `json.dumps`."""
        return {
            "realized_rate": float(self.realized_rate),
            "transition": np.asarray(self.transition, dtype=float).tolist(),
        }


def noise_report(clean: ArrayLike, noisy: ArrayLike, num_classes: int) -> NoiseReport:
    """Realised noise rate and empirical transition matrix of a noisy labelling."""
    transition = transition_matrix(clean, noisy, num_classes)
    clean, noisy = np.asarray(clean), np.asarray(noisy)
    if clean.size == 0:
        raise ValueError("cannot report on zero examples: clean and noisy are empty.")
    return NoiseReport(float(np.mean(clean != noisy)), transition)


def transition_matrix(
    clean: ArrayLike, noisy: ArrayLike, num_classes: int
) -> np.ndarray:
    """Empirical transition matrix T[i, j] = P(noisy = j | clean = i).

    Rows are clean classes, so each non-empty row sums to 1. The paper writes
    T_ij = P(Ỹ = i | Y = j), the transpose of this matrix. A clean class with
    no examples gets a row of zeros.

    Returns:
        (C, C) float64 array of row-normalised counts.
    """
    clean = check_labels(clean, num_classes, "clean")
    noisy = check_labels(noisy, num_classes, "noisy")
    if clean.shape != noisy.shape:
        lengths = f"{len(clean)} and {len(noisy)}"
        raise ValueError(f"clean and noisy must have the same length, got {lengths}.")
    counts = np.bincount(clean * num_classes + noisy, minlength=num_classes**2)
    counts = counts.reshape(num_classes, num_classes).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


#: How far a row of T may sum from 1.
ROW_SUM_TOLERANCE = 1e-3


def check_transition(transition: ArrayLike, num_classes: int | None = None) -> np.ndarray:
    """T as a float64 array, or a ValueError that says what is wrong and how to fix it.

    T[i, j] = P(noisy = j | clean = i): square, finite, non-negative, each row
    summing to 1. `num_classes`, if given, is the size it must have.
    """
    size = "C" if num_classes is None else num_classes
    hint = (
        f"Give a ({size}, {size}) row-stochastic matrix, "
        "T[i, j] = P(noisy = j | clean = i), as a nested list or array."
    )
    try:
        matrix = np.asarray(transition, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"transition is not a matrix of numbers ({error}). {hint}") from error
    if num_classes is None and (matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2):
        raise ValueError(f"transition must be a square (C, C) matrix with C >= 2, got shape {matrix.shape}. {hint}")
    if num_classes is not None and matrix.shape != (num_classes, num_classes):
        raise ValueError(
            f"transition has shape {matrix.shape}, but the classifier has {num_classes} "
            f"outputs, so it needs shape ({num_classes}, {num_classes}). {hint}"
        )
    if not np.all(np.isfinite(matrix)):
        where = [tuple(int(i) for i in ij) for ij in np.argwhere(~np.isfinite(matrix))]
        raise ValueError(f"transition is not finite (NaN or inf) at {where}. Re-estimate it; {hint}")
    if np.any(matrix < 0.0):
        where = [tuple(int(i) for i in ij) for ij in np.argwhere(matrix < 0.0)]
        raise ValueError(
            f"transition has negative entries at {where}; entries are probabilities. "
            "Clip them to 0 and divide each row by its sum."
        )
    sums = matrix.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"transition rows must sum to 1 (within {ROW_SUM_TOLERANCE}): rows {bad.tolist()} "
            f"sum to {np.round(sums[bad], 6).tolist()}. Rows are the clean class; if the "
            "matrix is transposed (rows = noisy class) pass its transpose, otherwise "
            "normalise: T / T.sum(axis=1, keepdims=True)."
        )
    return matrix
