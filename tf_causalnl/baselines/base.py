"""The base of the single-network baselines: Keras' own `train_step`, our loss.

A baseline that is only a loss (CE, Forward, Reweight, T-Revision, MentorNet)
subclasses `NoisyLabelClassifier` and overrides `per_example_loss`; Keras'
default `train_step` runs the forward pass, the gradient and the update.
"""

import keras
import tensorflow as tf

from tf_causalnl import networks
from tf_causalnl.data import to_float


def split_labels(y):
    """(noisy labels, clean labels or None) from integer labels or {"noisy", "clean"}.

    Clean training labels, where a benchmark knows them, only feed the
    `clean_accuracy` diagnostic; no loss ever reads them.
    """
    if y is None:
        raise ValueError("Training needs labels: call fit(x, noisy_labels) or fit on (x, y) batches.")
    if isinstance(y, dict):
        return y["noisy"], y.get("clean")
    return y, None


def reject_sample_weight(sample_weight) -> None:
    if sample_weight is not None:
        raise ValueError(
            "The label-noise models do not take sample weights or class weights: "
            "the methods set their own per-example weights. Drop "
            "`sample_weight`/`class_weight`."
        )


@keras.saving.register_keras_serializable(package="tf_causalnl")
class NoisyLabelClassifier(keras.Model):
    """A classifier q(Y|X) trained on noisy labels with a method's loss.

    `call` returns class probabilities (inputs as for `CausalNL`: uint8 images,
    floats in [0, 1], or vectors), so `predict`, `evaluate` and `export` behave
    like any Keras classifier. This base class trains with plain cross-entropy
    on the noisy labels (the CE baseline); subclasses change
    `per_example_loss`. The loss passed to `compile` is not used.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax).
      seed: seeds any randomness of the method.
    """

    def __init__(self, classifier: keras.Model, *, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        networks.check_classifier(classifier)
        self.classifier = classifier
        self.num_classes = int(classifier.output_shape[-1])
        self.seed = int(seed)
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.clean_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="clean_accuracy")
        self.built = True

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=False):
        # Keras' cross-entropy recovers the logits behind a softmax, so losses
        # computed from these probabilities stay numerically stable.
        return keras.activations.softmax(self.classifier(to_float(inputs), training=training))

    def per_example_loss(self, x, labels, probabilities, training):
        """The method's loss of each example (cross-entropy for the CE baseline)."""
        return keras.losses.sparse_categorical_crossentropy(labels, probabilities)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reject_sample_weight(sample_weight)
        labels, _ = split_labels(y)
        per_example = self.per_example_loss(to_float(x), labels, y_pred, training)
        # Divided by the global batch: Keras sums gradients over replicas.
        return tf.nn.compute_average_loss(per_example) + self._regularization()

    def _regularization(self):
        """Layers' own losses (weight decay), divided by the replicas like the rest."""
        if not self.losses:
            return 0.0
        return tf.add_n(self.losses) / tf.distribute.get_strategy().num_replicas_in_sync

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, clean = split_labels(y)
        self.accuracy_tracker.update_state(labels, y_pred)
        logs = {"loss": self._loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}
        if clean is not None:
            self.clean_accuracy_tracker.update_state(clean, y_pred)
            logs["clean_accuracy"] = self.clean_accuracy_tracker.result()
        return logs

    def get_config(self):
        return {
            "name": self.name,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)
