"""DivideMix (Li, Socher and Hoi, ICLR 2020): two networks split the data for each other, then MixMatch."""

import keras
import tensorflow as tf

from tf_causalnl.data import to_float
from tf_causalnl.models import losses
from tf_causalnl.models.division import INDEX, DivideMixTraining
from tf_causalnl.models.two_networks import TwoNetworks
from tf_causalnl.models.wrapper import float32, reject_sample_weight, split_labels


@keras.saving.register_keras_serializable(package="tf_causalnl")
class DivideMix(DivideMixTraining, TwoNetworks):
    """DivideMix: label noise as semi-supervised learning, with two networks that divide for each other.

    After `warmup_epochs` of cross-entropy, each epoch starts with a pass
    over the training data: a two-component GMM on each network's losses
    gives every example a clean probability w. Network 1 trains on network
    2's division and the other way round: the rows with w > `p_threshold` are
    labelled, their targets refined (w * y + (1 - w) * p, sharpened); the
    others unlabelled, their targets guessed by both networks (sharpened);
    the batch is mixed (MixMatch, lambda ~ Beta(`mixmatch_alpha`)) and the loss
    is the labelled rows' cross-entropy, `lambda_u` (ramped over
    `rampup_epochs`) times the unlabelled rows' squared error, and a penalty
    that keeps the mean prediction uniform. `call`, `predict` and `evaluate`
    use the two networks' average probabilities, as DivideMix tests.
    `models.division` says what differs from the public code.

    Example:
      >>> classifier = tf_causalnl.networks.build_small_cnn((28, 28, 1), 10)
      >>> model = DivideMix(classifier, warmup_epochs=3)
      >>> model.compile(optimizer="adam")
      >>> model.fit(x_train, noisy_labels, epochs=12, validation_data=(x_test, y_test))

    Labels: integer class ids, or a dict {"noisy", "clean"}; clean labels
    only feed `clean_accuracy` and `selection_precision` (the share of the
    labelled rows whose noisy label is right). A `tf.data.Dataset` carries
    "index" too (`data.train_dataset(..., with_index=True)`).

    Args:
      classifier: a built functional or Sequential model from inputs to
        logits; network 2 is a fresh clone.
      warmup_epochs: epochs of plain cross-entropy first (10 for CIFAR-10,
        30 for CIFAR-100 in the paper).
      p_threshold: the clean probability above which an example is labelled.
      sharpen_temperature: T of the sharpening (0.5).
      mixmatch_alpha: alpha of MixMatch's Beta distribution (4).
      lambda_u: the weight of the unlabelled loss (25 for CIFAR-10 at high
        noise, 0 at low; 150 for CIFAR-100 at 90%).
      rampup_epochs: epochs over which lambda_u rises after the warm-up (16).
      seed: seeds the GMM and the mixing; a step's draws are a function of
        (seed, step), so a resumed run replays them.
    """

    def __init__(self, classifier: keras.Model, *, warmup_epochs: int = 10, p_threshold: float = 0.5,
                 sharpen_temperature: float = 0.5, mixmatch_alpha: float = 4.0, lambda_u: float = 25.0,
                 rampup_epochs: int = 16, seed: int = 0, **kwargs):
        super().__init__(classifier, seed=seed, **kwargs)
        self.term_trackers = self._init_division(warmup_epochs, p_threshold, sharpen_temperature, mixmatch_alpha,
                                                 lambda_u, rampup_epochs)

    def call(self, inputs, training=False):
        """The two networks' average class probabilities."""
        x = to_float(inputs)
        return 0.5 * sum(keras.activations.softmax(float32(n, x, training)) for n in self.classifiers)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        reject_sample_weight(sample_weight)
        labels, clean = split_labels(y)
        x = to_float(x)
        seeds = self._mix_seeds(self.optimizer.iterations)
        with tf.GradientTape() as tape:
            logits = [float32(network, x, True) for network in self.classifiers]
            loss, terms, masks = self._warmup_or_dividemix_loss(x, labels, y[INDEX], logits, seeds)
            loss = loss + self._regularization()
            scaled = self.optimizer.scale_loss(loss)  # mixed_float16's loss scale, else 1
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        logs = self._update_trackers(loss, logits[0], labels, clean)
        logs = {"loss": logs.pop("loss"), **self._log_division(terms, self.term_trackers), **logs}
        return {**logs, **self._selection_logs(masks, labels, clean)}

    def test_step(self, data):
        """The average prediction's cross-entropy and accuracy."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        reject_sample_weight(sample_weight)
        labels, clean = split_labels(y)
        log_probabilities = tf.math.log(tf.maximum(self(x, training=False), 1e-12))
        loss = tf.nn.compute_average_loss(losses.cross_entropy(log_probabilities, labels))
        return self._update_trackers(loss, log_probabilities, labels, clean)

    def inference_classifier(self) -> keras.Model:
        """One functional model from inputs to the log of the average probabilities, for export.

        Its outputs are logits in the sense that their softmax is the average
        of the two networks' probabilities; it shares their layers and weights.
        """
        x_in = keras.Input(self.classifier.input_shape[1:])
        average = keras.layers.Average()([_Probabilities(n, name=f"network_{i}")(x_in)
                                          for i, n in enumerate(self.classifiers, start=1)])
        return keras.Model(x_in, keras.ops.log(keras.ops.maximum(average, 1e-12)), name="dividemix_average")

    def get_config(self):
        return {**self._classifier_config(), **self._division_config()}


class _Probabilities(keras.layers.Layer):
    """A network's class probabilities, as one layer of `DivideMix.inference_classifier`."""

    def __init__(self, network: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.network = network

    def call(self, inputs):
        return keras.activations.softmax(float32(self.network, inputs, False))
