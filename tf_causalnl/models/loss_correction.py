"""Loss correction with a transition matrix: Forward, Reweight and T-Revision.

All three take T with T[i, j] = P(noisy = j | clean = i) (rows: clean class,
columns: noisy class), estimated elsewhere from the noisy data, and differ in
how it enters the loss on the noisy labels. While training, the loss is the
method's; in evaluation (`evaluate`, `val_*` logs, `training=False`) it is plain
cross-entropy, because validation and test labels are clean: `val_loss` is then
the classifier's cross-entropy on them, comparable across methods.
"""


import keras
import numpy as np
import tensorflow as tf

from tf_causalnl import noise, validation
from tf_causalnl.models import baseline_losses
from tf_causalnl.models.ce import NoisyLabelClassifier


class _TransitionCorrection(NoisyLabelClassifier):
    """Holds T, validated; subclasses define `training_loss`."""

    def __init__(self, classifier: keras.Model, *, transition, seed: int = 0, **kwargs):
        super().__init__(classifier, seed=seed, **kwargs)
        self.transition = noise.check_transition(transition, self.num_classes)
        self._transition_tensor = tf.constant(self.transition, tf.float32)

    def per_example_loss(self, labels, probabilities, training):
        if not training:
            return super().per_example_loss(labels, probabilities, training)
        return self.training_loss(labels, probabilities)

    def training_loss(self, labels, probabilities):
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "transition": self.transition.tolist()}


@keras.saving.register_keras_serializable(package="tf_causalnl")
class Forward(_TransitionCorrection):
    """Forward loss correction (Patrini et al., CVPR 2017, Theorem 2).

    Trains on -log((p @ T)[y~]): the classifier's clean-class probabilities p,
    pushed through the noise process T, should explain the noisy label. The
    probability inside the log is floored at 1e-7. In evaluation the loss is
    plain cross-entropy of p (see the module docstring).

    Args:
      classifier: a built Keras model from inputs to logits (no softmax).
      transition: (C, C) row-stochastic T, T[i, j] = P(noisy = j | clean = i).
      seed: unused (the method has no randomness); kept for a uniform API.
    """

    def training_loss(self, labels, probabilities):
        return baseline_losses.forward_corrected_cross_entropy(probabilities, labels, self._transition_tensor)


@keras.saving.register_keras_serializable(package="tf_causalnl")
class Reweight(_TransitionCorrection):
    """Importance reweighting (Liu & Tao, TPAMI 2016), as run by Xia et al. (2019).

    Trains on beta * CE(p, y~) with beta = p[y~] / (p @ T)[y~], the ratio of
    the clean to the noisy probability of the observed label, computed from
    the classifier's own p and treated as a constant (no gradient through it).
    The denominator is floored at 1e-7. In evaluation the loss is plain
    cross-entropy (see the module docstring).

    Args:
      classifier: a built Keras model from inputs to logits (no softmax).
      transition: (C, C) row-stochastic T, T[i, j] = P(noisy = j | clean = i).
      seed: unused (the method has no randomness); kept for a uniform API.
    """

    def training_loss(self, labels, probabilities):
        return baseline_losses.importance_reweighted_cross_entropy(
            probabilities, labels, self._transition_tensor, weight_gradient=False
        )


@keras.saving.register_keras_serializable(package="tf_causalnl")
class TRevision(_TransitionCorrection):
    """T-Revision (Xia et al., "Are Anchor Points Really Indispensable in
    Label-Noise Learning?", NeurIPS 2019).

    Reweighting with a revised matrix T + dT, where dT is a trainable (C, C)
    variable starting at zero, and the weight beta = p[y~] / (p @ (T + dT))[y~]
    is differentiated with respect to dT, so that the loss trains dT jointly
    with the classifier; the classifier's gradient is Reweight's (see
    `losses.importance_reweighted_cross_entropy` for why).

    The authors run three stages: estimate T, train with Reweight, then revise
    (train classifier and dT from the Reweight solution). Here T is given and
    one `fit` trains classifier and dT together from the start; to follow the
    paper, fit a `Reweight` first and start `TRevision` from its classifier.

    The revised matrix is clipped to be non-negative inside the loss,
    max(T + dT, 0), so no entry of the noise process goes negative; rows are
    not renormalised (the authors' code does not either). The gradient of the
    loss pushes dT up in the column of each observed label, so dT would keep
    growing; the authors revise with Adam at a learning rate of 5e-7. Here dT
    is `revision_scale` times a trainable variable: Adam's steps are about
    its learning rate whatever the gradient's size, so with the paper's 1e-3
    and the default scale 5e-4, dT moves about 5e-7 per step, as in the
    authors' revision stage, while the classifier trains at 1e-3.
    `revised_transition` returns the clipped matrix the loss uses.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax).
      transition: (C, C) row-stochastic T, T[i, j] = P(noisy = j | clean = i).
      revision_scale: dT = revision_scale * (a trainable variable).
      seed: unused (the method has no randomness); kept for a uniform API.
    """

    def __init__(self, classifier: keras.Model, *, transition, revision_scale: float = 5e-4,
                 seed: int = 0, **kwargs):
        super().__init__(classifier, transition=transition, seed=seed, **kwargs)
        validation.check_number(revision_scale, "revision_scale", above=0.0)
        self.revision_scale = float(revision_scale)
        self.transition_revision = self.add_weight(
            shape=(self.num_classes, self.num_classes),
            initializer="zeros",
            trainable=True,
            name="transition_revision",
        )

    def _revised(self) -> tf.Tensor:
        revision = self.revision_scale * self.transition_revision
        return tf.maximum(self._transition_tensor + revision, 0.0)

    @property
    def revised_transition(self) -> np.ndarray:
        """max(T + dT, 0) as a NumPy array: the matrix the training loss uses."""
        return keras.ops.convert_to_numpy(self._revised())

    def training_loss(self, labels, probabilities):
        return baseline_losses.importance_reweighted_cross_entropy(
            probabilities, labels, self._revised(), weight_gradient=True
        )

    def get_config(self):
        return {**super().get_config(), "revision_scale": self.revision_scale}
