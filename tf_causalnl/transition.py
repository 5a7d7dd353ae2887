"""Noisy-label transition matrix and noise rate from noisy data alone (anchor points).

An anchor point of clean class i is an input x with P(Y = i | x) = 1. There
P(Y~ = j | x) = sum_k P(Y = k | x) T[k, j] = T[i, j], so the noisy-label
posterior at an anchor *is* row i of the transition matrix. A classifier
trained with cross-entropy on the noisy labels estimates P(Y~ | x); the
example where its class-i probability is largest stands in for the anchor of
class i, and its probability vector becomes row i of T (Patrini et al.,
"Making Deep Neural Networks Robust to Label Noise: a Loss Correction
Approach", CVPR 2017). Clean labels are never used.

The largest probability is where an overconfident, overfitted network is most
wrong, so the anchor is taken at the 97th percentile of each column instead of
at its maximum, as the code of T-Revision does (Xia et al., "Are Anchor Points
Really Indispensable in Label-Noise Learning?", NeurIPS 2019). The percentile
is over all n examples: with C balanced classes the top 3 % of column i are
the top 3C % of class i's own examples (30 % on CIFAR-10, 9 % with 3 classes),
so with few classes about 100 - 30 / C keeps the same meaning. Even so the
pick leans to confident examples: T[i, i] tends to come out high and the flip
rate low (by 0.08 on average with 3 classes at 97, by 0.02 at 90, on the
blobs of tests/test_transition.py).

From T and the observed noisy class frequencies follow the clean class prior
(noisy prior = T^T clean prior) and the average flip rate
sum_i P(Y = i) (1 - T[i, i]), which can serve as co-teaching's forget rate.

Conventions: rows are clean classes, columns noisy classes, as in
`tf_causalnl.noise.transition_matrix` and Patrini et al.

Limitation: under instance-dependent noise (CausalNL's setting) the flip
probabilities depend on x, and one class-level T is only their average over
the anchors, not over the data; the rows it gives can be off. The implied
flip rate is still a usable forget rate, which co-teaching only needs roughly.
"""

import dataclasses
import math
from typing import Any

import keras
import numpy as np
from numpy.typing import ArrayLike

from tf_causalnl import networks
from tf_causalnl.baselines.base import NoisyLabelClassifier

# A transition matrix whose smallest singular value is below this fraction of
# its largest is treated as singular by `clean_class_prior`.
SINGULAR_RCOND = 1e-6
# How far the rows of a probability table may sum from 1 (float32 softmax
# outputs are within about 1e-6).
ROW_SUM_TOLERANCE = 1e-3


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


def _check_percentile(percentile: float) -> None:
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


def _check_transition(transition: ArrayLike) -> np.ndarray:
    t = np.asarray(transition, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(
            f"transition must be a square (C, C) matrix with C >= 2, got shape {t.shape}."
        )
    if not np.isfinite(t).all():
        raise ValueError("transition holds NaN or inf.")
    return t


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
    _check_percentile(percentile)
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
    t = _check_transition(transition)
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
    t = _check_transition(transition)
    clean_prior = _check_prior(clean_prior, t.shape[0], "clean_prior")
    return float(clean_prior @ (1.0 - np.diag(t)))


def _check_labels(labels: ArrayLike, num_classes: int, num_examples: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (num_examples,) or not (labels.size == 0 or labels.dtype.kind in "iu"):
        raise ValueError(
            f"noisy_labels must be a 1-D array of {num_examples} integer class ids (one per "
            f"example), got shape {labels.shape} and dtype {labels.dtype}; convert one-hot "
            "labels with argmax(axis=1)."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"noisy_labels must lie in [0, {num_classes}), found values in "
            f"[{labels.min()}, {labels.max()}]; pass the right num_classes or remap."
        )
    return labels.astype(np.int64)


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
    labels = _check_labels(noisy_labels, num_classes, p.shape[0])
    transition = anchor_transition_matrix(p, percentile)
    noisy_prior = np.bincount(labels, minlength=num_classes) / labels.shape[0]
    clean_prior = clean_class_prior(transition, noisy_prior)
    return NoiseEstimate(
        transition, noisy_prior, clean_prior, average_flip_rate(transition, clean_prior)
    )


class _KeepBestWeights(keras.callbacks.Callback):
    """Restores, at the end of `fit`, the weights of the epoch with the best `monitor`.

    Among epochs with equal scores the latest wins. That is the difference
    from `keras.callbacks.EarlyStopping(restore_best_weights=True)` (which in
    Keras 3.15 does restore at the end of training, early stop or not, but
    keeps the first of equal epochs): noisy validation accuracy saturates at
    about 1 - noise rate as soon as the argmax is right, often in the first
    epoch, while the probabilities the anchors read keep calibrating after.
    """

    def __init__(self, monitor: str = "val_accuracy"):
        super().__init__()
        self.monitor = monitor

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.best_weights = -math.inf, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"{self.monitor} is not in the epoch logs {sorted(logs or {})}.")
        if value >= self.best:
            self.best, self.best_epoch = float(value), epoch
            self.best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def estimate_noise(
    classifier: keras.Model,
    x: ArrayLike,
    noisy_labels: ArrayLike,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    holdout: float = 0.1,
    percentile: float = 97.0,
    seed: int = 0,
    verbose: int = 0,
) -> NoiseEstimate:
    """Trains a fresh copy of `classifier` on the noisy labels and estimates T from it.

    The copy (`keras.models.clone_model`, new weights: the user's model is
    never touched) is wrapped in `NoisyLabelClassifier` and trained with Adam
    and cross-entropy on the noisy labels, on a random split of (x,
    noisy_labels) that holds out a fraction `holdout` as a noisy validation
    set. The weights of the epoch with the best noisy validation accuracy are
    kept, the latest among equals (the final ones when `holdout` is 0). Its
    probabilities on all of x go to `estimate_from_probabilities`.

    `seed` fixes the split. The copy's initial weights and the batch order
    come from Keras' global random state: call `keras.utils.set_random_seed`
    first for a repeatable estimate.

    Args:
        classifier: a built Keras model from inputs to logits (no softmax),
            functional or Sequential (or subclassed with a `get_config`).
        x: (n, ...) uint8 images (scaled by 1/255) or float arrays.
        noisy_labels: (n,) integer noisy labels.
        epochs: training epochs, at least 1.
        batch_size: batch size of training and prediction.
        learning_rate: Adam's learning rate.
        holdout: fraction of the data held out for validation, in [0, 1).
        percentile: anchor percentile, in (0, 100] (see
            `anchor_transition_matrix`).
        seed: seed of the train/validation split.
        verbose: Keras verbosity of `fit` and `predict`.

    Returns:
        A `NoiseEstimate`; its `noise_rate` can serve as co-teaching's forget rate.
    """
    networks.check_classifier(classifier)
    num_classes = int(classifier.output_shape[-1])
    _check_percentile(percentile)
    if not 0.0 <= holdout < 1.0:
        raise ValueError(
            f"holdout must be in [0, 1), got {holdout}; give a fraction (0.1), not a "
            "percentage, or 0 to train on everything without validation."
        )
    if int(epochs) < 1 or int(batch_size) < 1 or not learning_rate > 0.0:
        raise ValueError(
            f"epochs and batch_size must be at least 1 and learning_rate positive, got "
            f"{epochs}, {batch_size} and {learning_rate}."
        )
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must be an array with one row per example, got a scalar.")
    labels = _check_labels(noisy_labels, num_classes, x.shape[0])
    n = labels.shape[0]
    if n < num_classes:
        raise ValueError(
            f"need at least as many examples as classes, got {n} examples for "
            f"{num_classes} classes."
        )
    num_holdout = max(1, round(holdout * n)) if holdout > 0.0 else 0
    if num_holdout >= n:
        raise ValueError(f"holdout={holdout} leaves no training examples out of {n}; lower it.")

    order = np.random.default_rng(seed).permutation(n)
    train, val = order[num_holdout:], order[:num_holdout]
    try:
        copy = keras.models.clone_model(classifier)
    except Exception as error:  # clone_model raises several types for subclassed models
        raise ValueError(
            "estimate_noise trains a copy made by keras.models.clone_model, which failed "
            f"for this classifier ({type(error).__name__}: {error}). Build it with the "
            "functional or Sequential API, or give a subclassed model a get_config."
        ) from error
    model = NoisyLabelClassifier(copy, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit_kwargs = {}
    if num_holdout:
        fit_kwargs = dict(validation_data=(x[val], labels[val]), callbacks=[_KeepBestWeights()])
    model.fit(
        x[train],
        labels[train],
        batch_size=int(batch_size),
        epochs=int(epochs),
        verbose=verbose,
        **fit_kwargs,
    )
    probabilities = model.predict(x, batch_size=batch_size, verbose=verbose)
    return estimate_from_probabilities(probabilities, labels, num_classes, percentile)


#: The forget rate that asks for the estimated noise rate.
AUTO = "auto"


def check_forget_rate(forget_rate, name: str = "forget_rate") -> float | str:
    """A forget rate as models store it: a float in [0, 1), or "auto".

    Args:
      forget_rate: the value given.
      name: what the error calls it, e.g. "model.forget_rate" for a config.

    Raises:
      ValueError: neither "auto" nor a number in [0, 1).
    """
    if forget_rate == AUTO:
        return AUTO
    try:
        value = float(forget_rate)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f'{name} must be a number in [0, 1) or "auto", got {forget_rate!r}; give the expected '
            'noise rate as a fraction (0.45, not 45), or "auto" to estimate it from the noisy labels.')
    return value


def resolve_auto_forget_rate(model: keras.Model, x, y=None, **estimate_kwargs) -> None:
    """Replaces a model's forget_rate "auto" by the noise rate estimated from fit's data.

    Called by the `fit` of models with a forget rate (CausalNL, CoTeaching)
    before training: `estimate_noise` runs on a fresh copy of `model.classifier`
    with the (x, y) given to `fit` (arrays, or a dataset of (x, y) batches read
    once; {"noisy", "clean"} labels use "noisy"). The estimate is kept as
    `model.noise_estimate`. Does nothing when the forget rate is a number.
    """
    if model.forget_rate != AUTO:
        return
    if x is None:
        raise ValueError('forget_rate="auto" estimates the noise from the data given to fit(); pass x.')
    if y is None:  # a dataset, or another iterable of batches
        xs, ys = [], []
        for batch in x:
            xb, yb, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if yb is None:
                raise ValueError('forget_rate="auto" needs labels: batches of (x, y).')
            xs.append(keras.ops.convert_to_numpy(xb))
            ys.append(keras.ops.convert_to_numpy(yb["noisy"] if isinstance(yb, dict) else yb))
        x, y = np.concatenate(xs), np.concatenate(ys)
    elif isinstance(y, dict):
        y = y["noisy"]
    model.noise_estimate = estimate_noise(model.classifier, np.asarray(x), np.asarray(y), **estimate_kwargs)
    model.forget_rate = float(model.noise_estimate.noise_rate)
