"""The per-example losses of the single-network baselines of Section 4.1.

Pure functions of tensors, one value per example and no reduction, like
`tf_causalnl.models.losses`: the models reduce them once for the global batch
(`tf.nn.compute_average_loss`). Every function takes the classifier's softmax
`probabilities` (what `NoisyLabelClassifier.call` returns); their
cross-entropies go through Keras, which recovers the logits behind a softmax,
so they stay stable when the probabilities come from the model.

Transition matrices follow Patrini et al. (2017): T[i, j] = P(noisy = j |
clean = i), rows indexed by the clean class, so the noisy-label distribution of
an example is the row vector p @ T.
"""

import keras
import tensorflow as tf

from tf_causalnl.models.selection import DEFAULT_SELECTION, selection_mask

#: Floor of probabilities that go into a log or a denominator.
EPSILON = 1e-7


def _cross_entropy(probabilities: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return keras.losses.sparse_categorical_crossentropy(labels, probabilities)


def _probability_of(probabilities: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """probabilities[n, labels[n]] for every example n."""
    labels = tf.cast(labels, tf.int32)
    return tf.gather(probabilities, labels, axis=1, batch_dims=1)


def mixup_cross_entropy(
    probabilities: tf.Tensor, labels_a: tf.Tensor, labels_b: tf.Tensor, lam: tf.Tensor
) -> tf.Tensor:
    """Mixup's loss on a mixed batch (Zhang et al. 2018, Eq. 1 and Fig. 1).

    The input lam * x_a + (1 - lam) * x_b is trained towards the same mixture
    of its two labels; for cross-entropy that is the mixture of the two
    cross-entropies, as in the authors' code.

    Args:
      probabilities: softmax outputs on the mixed inputs, (batch, classes).
      labels_a: integer labels of the first inputs of each mixture.
      labels_b: integer labels of the second inputs (a permutation of labels_a).
      lam: the mixing weight in [0, 1], a scalar or one per example.

    Returns:
      lam * CE(p, y_a) + (1 - lam) * CE(p, y_b), shape (batch,).
    """
    lam = tf.cast(lam, probabilities.dtype)
    return lam * _cross_entropy(probabilities, labels_a) + (1.0 - lam) * _cross_entropy(
        probabilities, labels_b
    )


def self_paced_cross_entropy(
    probabilities: tf.Tensor, labels: tf.Tensor, forget_rate: tf.Tensor,
    selection: str = DEFAULT_SELECTION,
) -> tf.Tensor:
    """Cross-entropy on the batch's small-loss examples only.

    The predefined-curriculum MentorNet (self-paced learning) that Han et al.
    (2018, Section 4) compare co-teaching with: one network keeps the
    round((1 - forget_rate) * batch) examples with its own smallest
    cross-entropy (`tf_causalnl.models.selection.selection_mask`), over the batch or
    within each noisy label (`selection`, one of `selection.SELECTIONS`).

    Returns:
      CE * mask * batch / kept, shape (batch,): zero on the dropped examples,
      scaled so that the batch mean is the mean over the kept ones.
    """
    ce = _cross_entropy(probabilities, labels)
    mask = tf.cast(selection_mask(ce, labels, forget_rate, selection, probabilities.shape[-1]), ce.dtype)
    scale = tf.cast(tf.shape(ce)[0], ce.dtype) / tf.reduce_sum(mask)
    return ce * mask * scale


def noisy_class_probabilities(probabilities: tf.Tensor, transition: tf.Tensor) -> tf.Tensor:
    """P(noisy label | x) = p @ T (Patrini et al. 2017, Section 3).

    Args:
      probabilities: clean-class probabilities p(y|x), (batch, classes).
      transition: T with T[i, j] = P(noisy = j | clean = i), (classes, classes).

    Returns:
      (batch, classes) noisy-class probabilities.
    """
    return tf.matmul(probabilities, tf.cast(transition, probabilities.dtype))


def forward_corrected_cross_entropy(
    probabilities: tf.Tensor, labels: tf.Tensor, transition: tf.Tensor
) -> tf.Tensor:
    """The forward-corrected loss of Patrini et al. (2017, Theorem 2).

    -log((p @ T)[y~]): the noisy label is scored under the noisy-class
    distribution the clean classifier implies. The probability is floored at
    `EPSILON` inside the log, so a class T maps nowhere gives a large finite
    loss rather than infinity. With T = I it is the cross-entropy.

    Args:
      probabilities: softmax outputs p(y|x), (batch, classes).
      labels: the noisy integer labels y~.
      transition: T, rows the clean class, columns the noisy class.

    Returns:
      Shape (batch,).
    """
    noisy = _probability_of(noisy_class_probabilities(probabilities, transition), labels)
    return -tf.math.log(tf.maximum(noisy, EPSILON))


def importance_weights(
    probabilities: tf.Tensor, labels: tf.Tensor, transition: tf.Tensor
) -> tf.Tensor:
    """beta = p(y~|x) / (p @ T)[y~]: clean over noisy probability of the label.

    The importance weight P(Y = y~ | x) / P(Y~ = y~ | x) of Liu & Tao (2016), with
    the classifier's own p(y|x) standing in for the clean posterior, as in Xia et
    al. (2019, Section 3) and their code.
    The denominator is floored at `EPSILON`. Gradients flow through both
    numerator and denominator; callers stop them where the method says so.

    Returns:
      Shape (batch,).
    """
    clean = _probability_of(probabilities, labels)
    noisy = _probability_of(noisy_class_probabilities(probabilities, transition), labels)
    return clean / tf.maximum(noisy, EPSILON)


def importance_reweighted_cross_entropy(
    probabilities: tf.Tensor,
    labels: tf.Tensor,
    transition: tf.Tensor,
    *,
    weight_gradient: bool = False,
) -> tf.Tensor:
    """beta * CE(p, y~): the importance-reweighted loss (Liu & Tao 2016).

    Args:
      probabilities: softmax outputs p(y|x), (batch, classes).
      labels: the noisy integer labels y~.
      transition: T, or T + dT for T-Revision.
      weight_gradient: False (Reweight): beta is a constant, only CE is
        differentiated. True (T-Revision, Xia et al. 2019, Section 3): beta's
        gradient flows into the transition matrix, which is how dT in the
        denominator learns; the classifier still gets only beta * dCE. (Letting
        it through beta into the classifier too, as the authors' code does
        during its revision stage at a learning rate of 5e-7, lets a
        classifier trained at an ordinary rate shrink its weights beta instead
        of fitting the labels: on FashionMNIST IDN-20% clean accuracy fell to
        38%.)

    Returns:
      Shape (batch,).
    """
    if weight_gradient:
        beta = importance_weights(tf.stop_gradient(probabilities), labels, transition)
    else:
        beta = tf.stop_gradient(importance_weights(probabilities, labels, transition))
    return beta * _cross_entropy(probabilities, labels)
