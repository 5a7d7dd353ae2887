"""Decoupling (Malach and Shalev-Shwartz, NeurIPS 2017): update only where the two networks disagree."""

import keras
import tensorflow as tf

from tf_causalnl import validation
from tf_causalnl.models import losses
from tf_causalnl.models.two_networks import TwoNetworks
from tf_causalnl.models.wrapper import float32


#: The smallest share of the batch Decoupling divides by: the authors' code
#: (github.com/emalach/UpdateByDisagreement, train.py, `min_batch_size`)
#: divides the disagreement set's summed loss by max(|set|, 0.1 * batch).
DEFAULT_MIN_UPDATE_FRACTION = 0.1


def disagreement_mask(logits1: tf.Tensor, logits2: tf.Tensor) -> tf.Tensor:
    """A 0/1 float mask of the examples whose predicted classes differ.

    Decoupling's "when to update" rule (Malach & Shalev-Shwartz 2017,
    Algorithm 1): the networks are updated on the examples where
    argmax h1(x) != argmax h2(x). The mask carries no gradient.

    Args:
      logits1, logits2: (batch, classes) outputs of the two networks.

    Returns:
      (batch,) float32 mask, 1.0 where the two argmax predictions differ.
    """
    predicted1 = tf.argmax(logits1, axis=-1)
    predicted2 = tf.argmax(logits2, axis=-1)
    return tf.stop_gradient(tf.cast(tf.not_equal(predicted1, predicted2), tf.float32))


def decoupling_losses(
    logits1: tf.Tensor,
    logits2: tf.Tensor,
    labels: tf.Tensor,
    min_update_fraction: float = DEFAULT_MIN_UPDATE_FRACTION,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Decoupling's per-example losses: cross-entropy on the disagreement set.

    Algorithm 1 of Malach & Shalev-Shwartz (2017) hands the disagreement set
    S of a mini-batch to the base update rule, i.e. trains each network on the
    mean loss over S. The authors' code floors the divisor at a share of the
    batch, so a batch with one or two disagreements does not take a full
    learning-rate step on them alone:

        loss_k = sum_{n in S} CE(logits_k[n], labels[n]) / max(|S|, f * batch)

    with f = `min_update_fraction`. Each example's term is scaled by
    batch / max(|S|, f * batch), so averaging the returned values over the
    batch (`tf.nn.compute_average_loss`) gives loss_k. f = 1 gives the sum over
    S divided by the batch; f -> 0 the plain mean over S. The loss is 0 when
    the networks agree on every example.

    Args:
      logits1, logits2: (batch, classes) outputs of the two networks.
      labels: (batch,) integer (noisy) labels.
      min_update_fraction: f above, in [0, 1].

    Returns:
      (loss1, loss2, mask): per-example losses of networks 1 and 2 and the
      disagreement mask.
    """
    mask = disagreement_mask(logits1, logits2)
    batch = tf.cast(tf.shape(mask)[0], tf.float32)
    divisor = tf.maximum(tf.reduce_sum(mask), tf.maximum(min_update_fraction * batch, 1.0))
    scale = mask * batch / divisor
    return losses.cross_entropy(logits1, labels) * scale, losses.cross_entropy(logits2, labels) * scale, mask


@keras.saving.register_keras_serializable(package="tf_causalnl")
class Decoupling(TwoNetworks):
    """Decoupling (Malach & Shalev-Shwartz, NeurIPS 2017): update on disagreement.

    Both networks see every batch but are trained only on the examples where
    their predicted classes differ ("when to update"), with plain
    cross-entropy ("how to update"); see `decoupling_losses` for the
    normalisation. `call` returns network 1's probabilities; `disagreement`
    logs the share of the batch the networks disagree on (also at evaluation,
    as `val_disagreement`).

    Example:
      >>> model = Decoupling(tf_causalnl.networks.build_small_cnn((28, 28, 1), 10))
      >>> model.compile(optimizer="adam")
      >>> model.fit(x_train, noisy_labels, validation_data=(x_test, y_test))

    Labels as for `CoTeaching`; with clean labels, `selection_precision` is
    the share of disagreement examples whose noisy label is correct.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax);
        network 2 is a fresh clone, so it must be functional or Sequential.
      min_update_fraction: the floor of the divisor, as a share of the batch
        (0.1 in the authors' code; 1.0 divides by the batch, 0.0 takes the
        plain mean over the disagreement set).
      seed: kept for a uniform constructor; training draws no random numbers.
    """

    def __init__(
        self,
        classifier: keras.Model,
        *,
        min_update_fraction: float = DEFAULT_MIN_UPDATE_FRACTION,
        seed: int = 0,
        **kwargs,
    ):
        validation.check_number(min_update_fraction, "min_update_fraction", at_least=0.0, at_most=1.0)
        super().__init__(classifier, seed=seed, **kwargs)
        self.min_update_fraction = float(min_update_fraction)
        self.disagreement_tracker = keras.metrics.Mean(name="disagreement")

    @property
    def metrics(self):
        return [*super().metrics, self.disagreement_tracker]

    def per_example_losses(self, logits1, logits2, labels):
        """Both networks' cross-entropy on the disagreement set."""
        loss1, loss2, mask = decoupling_losses(logits1, logits2, labels, self.min_update_fraction)
        return loss1, loss2, (mask,)

    def _selection_logs(self, selections, labels, clean):
        self.disagreement_tracker.update_state(selections[0])
        logs = super()._selection_logs(selections, labels, clean)
        return {**logs, "disagreement": self.disagreement_tracker.result()}

    def _evaluation_logs(self, x, logits1):
        self.disagreement_tracker.update_state(
            disagreement_mask(logits1, float32(self.classifiers[1], x, False))
        )
        return {"disagreement": self.disagreement_tracker.result()}

    def get_config(self):
        return {**super().get_config(), "min_update_fraction": self.min_update_fraction}
