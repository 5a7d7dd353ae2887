"""The two-network baselines of Section 4.1: Co-teaching and Decoupling.

Both train two copies of the classifier on each batch and differ only in which
examples each copy learns from:

- Co-teaching (Han et al., "Co-teaching: Robust Training of Deep Neural
  Networks with Extremely Noisy Labels", NeurIPS 2018, Algorithm 1): each
  network keeps its small-loss examples and its peer is trained on them.
- Decoupling (Malach & Shalev-Shwartz, "Decoupling 'when to update' from 'how
  to update'", NeurIPS 2017, Algorithm 1): both networks are trained only on
  the examples where their predicted classes disagree.

The selection maths are pure functions of tensors (`losses.coteaching` and the
functions below); `train_step` is the same for both models.
"""

import keras
import tensorflow as tf

from tf_causalnl import losses, networks, validation
from tf_causalnl.forget_rate import ForgetRateMixin
from tf_causalnl.wrapper import ClassifierWrapper, float32, unpack_batch

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


class _TwoNetworks(ClassifierWrapper, keras.Model):
    """What Co-teaching and Decoupling share: two networks, one `train_step`.

    Subclasses define `per_example_losses`, which says which examples each
    network learns from. Both networks are updated by one optimizer on the sum
    of their losses (the logged `loss`); each network's gradient is that of its
    own loss, so this is the same as two optimizers (except for a global
    `clipnorm`). `test_step` logs network 1's plain cross-entropy and accuracy
    on the given labels, so `val_accuracy` is the clean test accuracy. Under a
    `tf.distribute` strategy each replica selects and normalises within its
    own share of the batch, as `CausalNL` does.
    """

    def __init__(self, classifier: keras.Model, *, seed: int = 0, **kwargs):
        networks.check_classifier(classifier, kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.classifiers = [classifier, networks.fresh_clone(classifier, type(self).__name__)]
        mean = keras.metrics.Mean
        self.loss_tracker = mean(name="loss")
        self._init_accuracy_trackers()
        self.selection_precision_tracker = mean(name="selection_precision")
        self.built = True

    @property
    def classifier(self) -> keras.Model:
        """Network 1: the classifier the user passed in and keeps."""
        return self.classifiers[0]

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.accuracy_tracker,
            self.clean_accuracy_tracker,
            self.selection_precision_tracker,
        ]


    def per_example_losses(
        self, logits1: tf.Tensor, logits2: tf.Tensor, labels: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, ...]]:
        """(loss1, loss2, selections): per-example losses of the two networks,
        scaled so that their batch mean is the method's loss, and the 0/1
        masks of the examples the networks are trained on."""
        raise NotImplementedError

    def train_step(self, data):
        x, labels, clean = unpack_batch(data)
        with tf.GradientTape() as tape:
            logits1 = float32(self.classifiers[0], x, True)
            logits2 = float32(self.classifiers[1], x, True)
            loss1, loss2, selections = self.per_example_losses(logits1, logits2, labels)
            # Divided by the global batch: Keras sums gradients over replicas.
            loss = tf.nn.compute_average_loss(loss1 + loss2) + self._regularization()
            scaled = self.optimizer.scale_loss(loss)  # mixed_float16's loss scale, else 1
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        logs = self._update_trackers(loss, logits1, labels, clean)
        return {**logs, **self._selection_logs(selections, labels, clean)}

    def test_step(self, data):
        x, labels, clean = unpack_batch(data)
        logits1 = float32(self.classifiers[0], x, False)
        loss = tf.nn.compute_average_loss(losses.cross_entropy(logits1, labels))
        logs = self._update_trackers(loss, logits1, labels, clean)
        return {**logs, **self._evaluation_logs(x, logits1)}

    def _selection_logs(self, selections, labels, clean) -> dict:
        """Diagnostics of the examples the networks were trained on."""
        if clean is None:
            return {}
        correct = tf.cast(tf.equal(tf.cast(labels, tf.int32), tf.cast(clean, tf.int32)), tf.float32)
        for mask in selections:
            self.selection_precision_tracker.update_state(correct, sample_weight=mask)
        return {"selection_precision": self.selection_precision_tracker.result()}

    def _evaluation_logs(self, x, logits1) -> dict:
        """Method-specific diagnostics of `test_step` (none by default)."""
        return {}

    def _update_trackers(self, loss, logits, labels, clean) -> dict:
        # The loss is divided by the global batch; log the mean per example.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.loss_tracker.update_state(loss * replicas)
        return {"loss": self.loss_tracker.result(), **self._accuracy_logs(labels, clean, logits)}

    def _regularization(self):
        """Layers' own losses (weight decay) of both networks, divided by the replicas."""
        if not self.losses:
            return 0.0
        return tf.add_n(self.losses) / tf.distribute.get_strategy().num_replicas_in_sync

    def get_config(self):
        return self._classifier_config()


@keras.saving.register_keras_serializable(package="tf_causalnl")
class CoTeaching(ForgetRateMixin, _TwoNetworks):
    """Co-teaching (Han et al., NeurIPS 2018): two networks teach each other.

    Each network ranks the batch by its own cross-entropy on the noisy labels
    and keeps the round((1 - R(T)) * batch) small-loss examples; its peer is
    trained on them (Algorithm 1, lines 4-7). R(T) rises linearly from 0 to
    `forget_rate` over `ramp_epochs` epochs (`callbacks.ForgetRateSchedule`,
    which `fit` adds). `call` returns network 1's probabilities.

    Example:
      >>> classifier = tf_causalnl.networks.build_small_cnn((28, 28, 1), 10)
      >>> model = CoTeaching(classifier, forget_rate=0.45)
      >>> model.compile(optimizer="adam")
      >>> model.fit(x_train, noisy_labels, validation_data=(x_test, y_test))

    Labels are integer class ids, or {"noisy": ..., "clean": ...}; clean labels
    only feed `clean_accuracy` and `selection_precision` (the share of
    selected examples whose noisy label is correct), never the loss. The
    logged `loss` is the sum of the two networks' losses.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax);
        network 2 is a fresh clone (`keras.models.clone_model`), so it must be
        functional or Sequential.
      forget_rate: the final forget rate tau, in [0, 1); typically the noise
        rate.
      ramp_epochs: T_k, the epochs over which the forget rate rises (10 in
        the paper).
      selection: "global" (the paper) ranks the whole batch; "per_class"
        keeps the same share of each noisy label (`losses.SELECTIONS`).
      seed: kept for a uniform constructor; training draws no random numbers.
    """

    def __init__(
        self,
        classifier: keras.Model,
        *,
        forget_rate: float | str = 0.2,
        ramp_epochs: int = 10,
        selection: str = losses.DEFAULT_SELECTION,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(classifier, seed=seed, **kwargs)
        self._init_forget_rate(forget_rate, ramp_epochs, selection)

    def per_example_losses(self, logits1, logits2, labels):
        """Each network's cross-entropy on the examples its peer selected."""
        loss1, loss2, mask1, mask2 = losses.coteaching(logits1, logits2, labels, self.forget_rate_variable,
                                                     self.selection)
        return loss1, loss2, (mask1, mask2)

    def get_config(self):
        return {**super().get_config(), **self._forget_rate_config()}


@keras.saving.register_keras_serializable(package="tf_causalnl")
class Decoupling(_TwoNetworks):
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
