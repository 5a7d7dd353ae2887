"""The noise-rate estimate from noisy labels alone: a CE classifier, then its anchor points.

`estimate_noise` trains `NoisyLabelClassifier` on the noisy labels (keeping
the epoch of best noisy validation accuracy) and turns its probabilities into
a `NoiseEstimate` (`tf_causalnl.noise.estimation`).
"""

import math

import keras
import numpy as np
from numpy.typing import ArrayLike

from tf_causalnl import networks, noise, validation
from tf_causalnl.models.ce import NoisyLabelClassifier
from tf_causalnl.noise.estimation import NoiseEstimate, check_percentile, estimate_from_probabilities


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
    members: int = 1,
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
        members: classifiers trained one after the other (each from its own
            initial weights, on the same split); the estimate is the mean of
            theirs, field by field. One classifier's estimate varies by about
            8 points of noise rate from run to run on the CPU protocol; three
            take about a quarter off its error (docs/RESULTS.md).
        seed: seed of the train/validation split.
        verbose: Keras verbosity of `fit` and `predict`.

    Returns:
        A `NoiseEstimate`; its `noise_rate` can serve as co-teaching's forget rate.
    """
    networks.check_classifier(classifier)
    num_classes = int(classifier.output_shape[-1])
    check_percentile(percentile)
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
    labels = noise.check_labels(noisy_labels, num_classes, "noisy_labels", x.shape[0], classes_name=None)
    n = labels.shape[0]
    if n < num_classes:
        raise ValueError(
            f"need at least as many examples as classes, got {n} examples for "
            f"{num_classes} classes."
        )
    num_holdout = max(1, round(holdout * n)) if holdout > 0.0 else 0
    if num_holdout >= n:
        raise ValueError(f"holdout={holdout} leaves no training examples out of {n}; lower it.")

    validation.check_whole(members, "members", 1)
    estimates = []
    for _ in range(int(members)):  # the global random state moves on: other initial weights each time
        model = train_noisy_label_classifier(classifier, x, labels, epochs=epochs, batch_size=batch_size,
                                             learning_rate=learning_rate, holdout=holdout, seed=seed,
                                             verbose=verbose)
        probabilities = model.predict(x, batch_size=batch_size, verbose=verbose)
        estimates.append(estimate_from_probabilities(probabilities, labels, num_classes, percentile))
    if len(estimates) == 1:
        return estimates[0]
    return NoiseEstimate(*(np.mean([getattr(e, field) for e in estimates], axis=0)
                           for field in ("transition", "noisy_prior", "clean_prior", "noise_rate")))


def train_noisy_label_classifier(classifier: keras.Model, x: np.ndarray, labels: np.ndarray, *, epochs: int,
                                 batch_size: int, learning_rate: float, holdout: float, seed: int,
                                 verbose: int = 0) -> NoisyLabelClassifier:
    """The classifier `estimate_noise` reads: a fresh copy of `classifier` trained with
    cross-entropy on (x, labels) less a noisy holdout (a `holdout` fraction, split by
    `seed`), at its epoch of best noisy holdout accuracy. Arguments as `estimate_noise`'s,
    checked there."""
    n = labels.shape[0]
    num_holdout = max(1, round(holdout * n)) if holdout > 0.0 else 0
    order = np.random.default_rng(seed).permutation(n)
    train, val = order[num_holdout:], order[:num_holdout]
    copy = networks.clone_architecture(classifier, "estimate_noise trains a copy of the classifier")
    model = NoisyLabelClassifier(copy, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit_kwargs = {}
    if num_holdout:
        fit_kwargs = dict(validation_data=(x[val], labels[val]), callbacks=[_KeepBestWeights()])
    model.fit(x[train], labels[train], batch_size=int(batch_size), epochs=int(epochs), verbose=verbose,
              **fit_kwargs)
    return model
