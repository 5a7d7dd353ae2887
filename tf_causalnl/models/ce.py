"""The base of the single-network baselines: Keras' own `train_step`, our loss.

A baseline that is only a loss (CE, Forward, Reweight, T-Revision, MentorNet)
subclasses `NoisyLabelClassifier` and overrides `per_example_loss`; Keras'
default `train_step` runs the forward pass, the gradient and the update.
"""

import keras
import tensorflow as tf

from tf_causalnl import networks
from tf_causalnl.models.wrapper import ClassifierWrapper, reject_sample_weight, split_labels


@keras.saving.register_keras_serializable(package="tf_causalnl")
class NoisyLabelClassifier(ClassifierWrapper, keras.Model):
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
        networks.check_classifier(classifier, kwargs.get("dtype"))
        super().__init__(**kwargs)
        self.classifier = classifier
        self.num_classes = int(classifier.output_shape[-1])
        self.seed = int(seed)
        self._init_accuracy_trackers()
        self.built = True

    def per_example_loss(self, labels, probabilities, training):
        """The method's loss of each example (cross-entropy for the CE baseline)."""
        return keras.losses.sparse_categorical_crossentropy(labels, probabilities)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reject_sample_weight(sample_weight)
        labels, _ = split_labels(y)
        per_example = self.per_example_loss(labels, y_pred, training)
        # Divided by the global batch: Keras sums gradients over replicas.
        return tf.nn.compute_average_loss(per_example) + self._regularization()

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, clean = split_labels(y)
        return {"loss": self._loss_tracker.result(), **self._accuracy_logs(labels, clean, y_pred)}

    def get_config(self):
        return self._classifier_config()
