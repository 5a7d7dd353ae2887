"""Which training labels are wrong: a per-example mislabel score, T(x), and a ranking.

CausalNL learns q(Y|X) and an instance-dependent transition p(Y~|Y,X). With
both, Bayes' rule gives each example (x, given label y~) the posterior of
its clean label,

    P(Y = y | x, y~) = q(y|x) T(x)[y, y~] / sum_k q(k|x) T(x)[k, y~],

and the probability that its given label is wrong, 1 - P(Y = y~ | x, y~)
(`score="posterior"`). T(x)[y, :] is p(Y~ | Y=y, X=x) of branch 1, fed as in
training (Algorithm 1, lines 5-7): the noisy-label decoder reads the
reconstruction p(X | y, z) with z the mean of q(Z | x, y). No clean labels
are needed.

Any classifier (every baseline, and CausalNL's q(Y|X) alone) gives the
scores cleanlab ranks with, from its predicted probabilities p alone:
`"self_confidence"` (p[y~]) and `"normalized_margin"` ((p[y~] - max over
k != y~ of p[k] + 1) / 2). Here every score is turned so that higher means
likelier wrong (1 - cleanlab's label quality), and the ranking puts the
likeliest first.

    >>> issues = tf_causalnl.label_issues.find_label_issues(model, x_train, noisy_labels)
    >>> issues.ranking[:20]            # indices of the 20 likeliest mislabels
    >>> issues.noise_rate              # the mean posterior: the estimated noise rate
    >>> issues.to_dataframe()          # one row per example
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tf_causalnl import data, validation
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.models.wrapper import float32

#: The scores `find_label_issues` computes; "posterior" needs a CausalNL.
SCORES = ("posterior", "self_confidence", "normalized_margin")

#: Examples from which the progress bar shows when verbose="auto".
PROGRESS_FROM = 10_000


@dataclasses.dataclass
class LabelIssues:
    """Per-example mislabel scores of one model on (x, given labels).

    Attributes:
      given: (N,) the given (possibly noisy) labels.
      probabilities: (N, C) the classifier's q(Y|x).
      posterior: (N, C) P(Y | x, given label): q(Y|x) reweighted by T(x)'s
        column of the given label for `score="posterior"`, else q(Y|x).
      score: (N,) in [0, 1]; the higher, the likelier the given label is wrong.
      method: the score's name, one of `SCORES`.
      transition: (N, C, C) T(x)[y, y~] = p(Y~=y~ | Y=y, x) of CausalNL, or
        None for a classifier-only score.
    """

    given: np.ndarray
    probabilities: np.ndarray
    posterior: np.ndarray
    score: np.ndarray
    method: str
    transition: np.ndarray | None = None

    @property
    def predicted(self) -> np.ndarray:
        """(N,) the most probable clean label given x and the given label."""
        return np.argmax(self.posterior, axis=1)

    @property
    def is_issue(self) -> np.ndarray:
        """(N,) bool: the most probable clean label is not the given one."""
        return self.predicted != self.given

    @property
    def ranking(self) -> np.ndarray:
        """Example indices, likeliest mislabel first (ties in index order)."""
        return np.argsort(-self.score, kind="stable")

    @property
    def noise_rate(self) -> float:
        """The estimated share of wrong labels: the mean score for the posterior
        (the expected number of wrong labels over N), else the share of issues."""
        if self.method == "posterior":
            return float(np.mean(self.score))
        return float(np.mean(self.is_issue))

    @property
    def transition_rows(self) -> np.ndarray | None:
        """(N, C) T(x) at each example's predicted clean label: p(Y~ | Y=predicted, x)."""
        if self.transition is None:
            return None
        return self.transition[np.arange(len(self.given)), self.predicted]

    def class_transition(self) -> np.ndarray | None:
        """(C, C) the class-level transition: `transition_rows` averaged over the
        examples of each predicted clean class (a class never predicted keeps
        the identity row)."""
        if self.transition is None:
            return None
        num_classes = self.probabilities.shape[1]
        matrix = np.eye(num_classes)
        rows, predicted = self.transition_rows, self.predicted
        for c in range(num_classes):
            if np.any(predicted == c):
                matrix[c] = rows[predicted == c].mean(axis=0)
        return matrix

    def to_dataframe(self):
        """A pandas DataFrame: index, given and predicted label, score, rank (1 =
        likeliest wrong), is_issue, and the T(x) row as columns t0..t{C-1}."""
        try:
            import pandas as pd  # noqa: PLC0415 (pandas only for users who ask for a frame)
        except ImportError:
            raise ImportError("to_dataframe needs pandas: pip install pandas (or use columns(), a dict "
                              "of NumPy arrays).") from None

        return pd.DataFrame(self.columns())

    def columns(self) -> dict[str, np.ndarray]:
        """The table `to_dataframe` and the command's CSV hold, column by column."""
        rank = np.empty(len(self.given), np.int64)
        rank[self.ranking] = np.arange(1, len(self.given) + 1)
        table = {"index": np.arange(len(self.given)), "given_label": self.given,
                 "predicted_label": self.predicted, "score": self.score, "rank": rank,
                 "is_issue": self.is_issue}
        if self.transition is not None:
            for j, column in enumerate(self.transition_rows.T):
                table[f"t{j}"] = column
        return table


def reliability(score: np.ndarray, wrong: np.ndarray, bins: int = 10) -> list[tuple[int, float, float]]:
    """How well a score in [0, 1] reads as the probability that a label is wrong, where the truth is known.

    Args:
      score: (N,) e.g. `LabelIssues.score`.
      wrong: (N,) bool, the given label is wrong (known for synthetic noise,
        or for a subset someone checked by hand).
      bins: equal-width bins of the score.

    Returns:
      Per non-empty bin, in order: (examples, their mean score, the share of
      them wrong). Calibrated, the last two agree.
    """
    score, wrong = np.asarray(score, np.float64), np.asarray(wrong, bool)
    if score.shape != wrong.shape or score.ndim != 1:
        raise ValueError(f"score and wrong must be two (N,) arrays, got shapes {score.shape} and {wrong.shape}.")
    validation.check_whole(bins, "bins", 1)
    index = np.minimum((np.clip(score, 0.0, 1.0) * bins).astype(int), bins - 1)
    return [(int(np.sum(index == b)), float(np.mean(score[index == b])), float(np.mean(wrong[index == b])))
            for b in range(bins) if np.any(index == b)]


def calibration_error(score: np.ndarray, wrong: np.ndarray, bins: int = 10) -> float:
    """The expected calibration error of `reliability`'s bins: the examples' weighted mean
    of |mean score - share wrong|, 0 when the score is calibrated."""
    table = reliability(score, wrong, bins)
    return float(sum(n * abs(mean - share) for n, mean, share in table) / sum(n for n, _, _ in table))


def transition_rows(model: CausalNL, x: Any, classes: Any, branch: int = 0) -> tf.Tensor:
    """p(Y~ | Y=classes[i], X=x[i]) of a branch (0: branch 1, the one `predict`
    uses), fed as in training (Algorithm 1, lines 5-7).

    The noisy-label decoder reads the reconstruction decoder(z, y), with z
    the mean of q(Z | X=x, Y=y) and y one-hot. Returns (B, C) probabilities.
    """
    images = data.to_float(x)
    y = tf.one_hot(tf.cast(classes, tf.int32), model.num_classes)
    z_mean, _ = model.latent_encoders[branch]([images, y], training=False)
    reconstruction = model.decoders[branch]([z_mean, y], training=False)
    return tf.nn.softmax(float32(model.noisy_label_decoders[branch], [reconstruction, y], False))


def transition(model: CausalNL, x: Any, branch: int = 0) -> tf.Tensor:
    """T(x) of a batch: (B, C, C), entry [b, y, y~] = p(Y~=y~ | Y=y, X=x[b])."""
    images = data.to_float(x)
    batch, classes = tf.shape(images)[0], model.num_classes
    tiled = tf.repeat(images, classes, axis=0)  # Example b's C copies are rows bC .. bC + C - 1.
    every_class = tf.tile(tf.range(classes), [batch])
    return tf.reshape(transition_rows(model, tiled, every_class, branch), (batch, classes, classes))


def find_label_issues(
    model: keras.Model,
    x: Any,
    labels: Any = None,
    *,
    score: str | None = None,
    both_branches: bool = False,
    batch_size: int = 256,
    verbose: int | str = "auto",
) -> LabelIssues:
    """Scores every example's given label by how likely it is wrong.

    Args:
      model: a trained CausalNL, or any model here (or Keras classifier)
        whose `predict` returns class probabilities.
      x: inputs (an array, as for `fit`), or a `tf.data.Dataset` of
        (x, given labels) batches, in which case `labels` is None.
      labels: (N,) the given (noisy) integer labels of `x`.
      score: "posterior" (CausalNL only: the posterior that the given label
        is wrong, from q(Y|X) and T(x)), "self_confidence" or
        "normalized_margin" (from the classifier alone, as cleanlab defines
        them). None: "posterior" for CausalNL, else "self_confidence".
      both_branches: CausalNL only: average q(Y|X) and T(x) over its two
        branches (an ensemble of the two networks co-teaching trained)
        instead of branch 1's alone, which `predict` uses.
      batch_size: examples per batch, for arrays.
      verbose: 0 (silent), 1 (a progress bar), or "auto" (a bar from
        `PROGRESS_FROM` examples, or for a dataset of unknown size never).

    Returns:
      A `LabelIssues`, in the order of `x`.

    Raises:
      ValueError: an unknown score, "posterior" for a model without T(x),
        or bad input (the messages of `fit`), before any work.
    """
    is_causalnl = isinstance(model, CausalNL)
    score = score or ("posterior" if is_causalnl else "self_confidence")
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}.")
    if score == "posterior" and not is_causalnl:
        raise ValueError(f'score="posterior" needs a CausalNL (it reads T(x)); a {type(model).__name__} '
                         'has a classifier only: use score="self_confidence" or "normalized_margin".')
    if both_branches and not is_causalnl:
        raise ValueError(f"both_branches=True needs a CausalNL; a {type(model).__name__} has one classifier "
                         "to score with.")
    validation.check_whole(batch_size, "batch_size", 1)
    batches, total = _batches(model, x, labels, batch_size)
    show = verbose == 1 or (verbose == "auto" and total is not None and total >= PROGRESS_FROM)
    progress = keras.utils.Progbar(total, unit_name="example") if show else None

    compute = _compute_function(model, score == "posterior", 2 if both_branches else 1)
    given, probabilities, transitions = [], [], []
    try:
        for images, noisy in batches:
            outputs = compute(tf.convert_to_tensor(images))
            probabilities.append(outputs[0].numpy())
            if score == "posterior":
                transitions.append(outputs[1].numpy())
            given.append(np.asarray(noisy).astype(np.int64))
            if progress is not None:
                progress.add(len(given[-1]))
    except tf.errors.InvalidArgumentError as error:
        message = validation.input_error(error)
        if message is None:
            raise
        raise ValueError(message) from None
    if not given:
        raise ValueError("x has no examples; give at least one (x, label) pair.")
    given, probabilities = np.concatenate(given), np.concatenate(probabilities).astype(np.float64)
    transition_matrices = np.concatenate(transitions).astype(np.float64) if transitions else None
    return scores_from(probabilities, given, score, transition_matrices)


def scores_from(probabilities: np.ndarray, given: np.ndarray, score: str,
                transition_matrices: np.ndarray | None = None) -> LabelIssues:
    """The `LabelIssues` of predicted probabilities (N, C) and given labels (N,),
    with T(x) (N, C, C) for the posterior: the arithmetic of `find_label_issues`,
    for probabilities computed elsewhere (e.g. cross-validated)."""
    rows = np.arange(len(given))
    if score == "posterior":
        if transition_matrices is None:
            raise ValueError('score="posterior" needs the transition matrices T(x).')
        joint = probabilities * transition_matrices[rows, :, given]  # q(y|x) p(y~ | y, x), (N, C)
        posterior = joint / np.maximum(joint.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        value = 1.0 - posterior[rows, given]
    else:
        posterior = probabilities
        self_confidence = probabilities[rows, given]
        if score == "self_confidence":
            value = 1.0 - self_confidence
        else:
            others = probabilities.copy()
            others[rows, given] = -np.inf
            value = 1.0 - (self_confidence - others.max(axis=1) + 1.0) / 2.0
    return LabelIssues(given, probabilities, posterior, np.clip(value, 0.0, 1.0), score,
                       transition_matrices if score == "posterior" else None)


def _compute_function(model, with_transition: bool, branches: int):
    """A traced batch -> (q(Y|x), T(x) if asked) of `model`, averaged over its
    first `branches` branches; one trace per batch shape."""
    def compute(images):
        if branches == 1:
            probabilities = model(data.to_float(images), training=False)
        else:
            probabilities = tf.add_n([tf.nn.softmax(float32(model.classifiers[b], data.to_float(images), False))
                                      for b in range(branches)]) / branches
        if not with_transition:
            return (probabilities,)
        return probabilities, tf.add_n([transition(model, images, b) for b in range(branches)]) / branches
    return tf.function(compute, reduce_retracing=True)


def _batches(model, x, labels, batch_size):
    """(iterable of (images, labels) batches, number of examples or None), the input checked."""
    classifier = getattr(model, "classifier", model)
    num_classes = int(classifier.output_shape[-1])
    input_shape = tuple(classifier.input_shape[1:])
    if isinstance(x, tf.data.Dataset):
        if labels is not None:
            raise ValueError("x is a tf.data.Dataset, so its batches carry the labels; call "
                             "find_label_issues(model, dataset) without labels.")
        checked = validation.checked_dataset(x, num_classes=num_classes, input_shape=input_shape)
        size = None  # The labels may be a {"noisy", "clean"} dict: the noisy ones are scored.
        return (((b[0], b[1]["noisy"] if isinstance(b[1], dict) else b[1]) for b in checked), size)
    if labels is None:
        raise ValueError("find_label_issues needs the given labels: find_label_issues(model, x, labels).")
    validation.check_arrays(x, labels, num_classes=num_classes, input_shape=input_shape, labels_what="labels")
    if isinstance(labels, dict):  # {"noisy", "clean"}: the noisy labels are the given ones
        labels = labels["noisy"]
    x, labels = np.asarray(x), np.asarray(labels)
    return (((x[i:i + batch_size], labels[i:i + batch_size]) for i in range(0, len(x), batch_size)), len(x))
