"""What two-network models share: two classifiers, their trackers, their evaluation.

CausalNL's two branches, Co-teaching and Decoupling (Section 4.1) train two
copies of the user's classifier that pick each other's examples; this base
class holds both, logs the loss and which examples were picked, and
evaluates and predicts through the first.
"""

import keras
import tensorflow as tf

from tf_causalnl import networks
from tf_causalnl.models import losses
from tf_causalnl.models.wrapper import ClassifierWrapper, float32, unpack_batch


class TwoNetworks(ClassifierWrapper, keras.Model):
    """What CausalNL, Co-teaching and Decoupling share: two networks, one `train_step`.

    Subclasses define `per_example_losses`, which says which examples each
    network learns from. Both networks are updated by one optimizer on the sum
    of their losses (the logged `loss`); each network's gradient is that of its
    own loss, so this is the same as two optimizers (except for a global
    `clipnorm`). `test_step` logs network 1's plain cross-entropy and accuracy
    on the given labels, so `val_accuracy` is the clean test accuracy. Under a
    `tf.distribute` strategy each replica selects and normalises within its
    own share of the batch. CausalNL keeps the rest and replaces
    `train_step` by its two-branch one.
    """

    def __init__(self, classifier: keras.Model, *, seed: int = 0, **kwargs):
        networks.check_classifier(classifier, kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.seed = int(seed)
        self.classifiers = [classifier, networks.fresh_clone(classifier, type(self).__name__)]
        self.num_classes = int(classifier.output_shape[-1])
        mean = keras.metrics.Mean
        self.loss_tracker = mean(name="loss")
        self._init_accuracy_trackers()
        self.selection_precision_tracker = mean(name="selection_precision")
        self.built = True

    @property
    def classifier(self) -> keras.Model:
        """Network 1: the classifier the user passed in and keeps."""
        return self.classifiers[0]

    #: Trackers of the terms a subclass logs beside its loss, by name (CausalNL's ELBO terms).
    term_trackers: dict = {}

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            *self.term_trackers.values(),
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
        """Scores the classifier users keep: network 1's cross-entropy and accuracy.

        For CausalNL too: its ELBO terms are training diagnostics, and leaving
        them out makes evaluation as cheap as for a plain classifier (one
        network, not eight), and `val_loss` means what it means for any Keras
        classifier: the mean cross-entropy per example.
        """
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
        # The loss is divided by the global batch; log the mean per example,
        # weighed by the batch's size as Keras' own loss tracker does.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self.loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(logits)[0])
        return {"loss": self.loss_tracker.result(), **self._accuracy_logs(labels, clean, logits)}

    def get_config(self):
        return self._classifier_config()
