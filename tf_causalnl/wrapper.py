"""What every model here shares: it is built around a user's classifier.

CausalNL and each baseline wrap a Keras classifier that returns logits; the
mixin below gives them one `call`, one `build`, one `.keras` serialisation of
the classifier and one pair of accuracy diagnostics; the functions read the
labels of a batch the same way for all of them.
"""

import keras

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


def unpack_batch(data):
    """(x as float, noisy labels, clean labels or None) from what Keras hands a train/test step."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    reject_sample_weight(sample_weight)
    labels, clean = split_labels(y)
    return to_float(x), labels, clean


class ClassifierWrapper:
    """Mixin for `keras.Model` subclasses that keep the user's model as `self.classifier`.

    Subclasses call `_init_accuracy_trackers()` in `__init__` and extend
    `_classifier_config()` in `get_config`.
    """

    def _init_accuracy_trackers(self) -> None:
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.clean_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="clean_accuracy")

    def build(self, input_shape=None):
        # Every network is built in __init__; nothing is created lazily, so the
        # optimizer and BackupAndRestore see all variables from the start.
        self.built = True

    def compile(self, optimizer="rmsprop", **kwargs):
        """`keras.Model.compile`, then the optimizer's variables, made at once.

        Left to the first training step, Adam creates its variables inside
        that traced step and TensorFlow traces the whole step twice: for
        CausalNL's eight networks the first `fit` took 10-15 s longer on a
        2-core CPU. Call it inside the strategy scope, as for any model.
        """
        super().compile(optimizer=optimizer, **kwargs)
        if not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        """The classifier's class probabilities (uint8 inputs are scaled to [0, 1])."""
        # Keras' cross-entropy recovers the logits behind this softmax, so
        # losses computed from the probabilities stay numerically stable.
        return keras.activations.softmax(self.classifier(to_float(inputs), training=training))

    def _accuracy_logs(self, labels, clean, predictions) -> dict:
        """Updates `accuracy` (against the given labels) and, when clean labels
        are known, `clean_accuracy`; returns their results."""
        self.accuracy_tracker.update_state(labels, predictions)
        logs = {"accuracy": self.accuracy_tracker.result()}
        if clean is not None:
            self.clean_accuracy_tracker.update_state(clean, predictions)
            logs["clean_accuracy"] = self.clean_accuracy_tracker.result()
        return logs

    def _classifier_config(self) -> dict:
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
