"""What every model here shares: it is built around a user's classifier.

CausalNL and each baseline wrap a Keras classifier that returns logits; the
mixin below gives them one `fit` (its input checked by `validation`, a
divergence guard added), one `call`, one `build`, one `.keras` serialisation
of the classifier and one pair of accuracy diagnostics; the functions read the
labels of a batch the same way for all of them.
"""

import keras
import tensorflow as tf

from tf_causalnl import networks, validation
from tf_causalnl.models.callbacks import TerminateOnNonFinite
from tf_causalnl.data import to_float


def float32(network: keras.Model, inputs, training: bool) -> tf.Tensor:
    """`network(inputs)` in float32, whatever its dtype policy computes in.

    Under a mixed-precision policy ("mixed_bfloat16", "mixed_float16") the
    networks compute in 16 bits; every loss, sample and metric here reads
    their outputs through this cast, so the objective is summed in float32.
    """
    return tf.cast(network(inputs, training=training), tf.float32)


def split_labels(y):
    """(noisy labels, clean labels or None) from integer labels or {"noisy", "clean"}.

    Clean training labels, where a benchmark knows them, only feed the
    `clean_accuracy` diagnostic; no loss ever reads them.
    """
    if y is None:
        raise ValueError("Training needs labels: call fit(x, noisy_labels) or fit on (x, y) batches.")
    if isinstance(y, dict):
        validation.label_parts(y)
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


class _BatchCounter(keras.callbacks.Callback):
    """Counts the epochs begun and the batches trained, so that `fit` sees data that gave none."""

    def __init__(self):
        super().__init__()
        self.epochs = self.batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


class ClassifierWrapper:
    """Mixin for `keras.Model` subclasses that keep the user's model as `self.classifier`.

    Subclasses call `_init_accuracy_trackers()` in `__init__` and extend
    `_classifier_config()` in `get_config`.
    """

    def _init_accuracy_trackers(self) -> None:
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.clean_accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="clean_accuracy")

    def fit(self, x=None, y=None, *args, callbacks=None, validation_data=None, **kwargs):
        """`keras.Model.fit`, after its input is checked, with a divergence guard.

        Before any work: arrays (NumPy, tensors) are checked whole, a
        `tf.data.Dataset` by its spec (`validation.check_arrays`,
        `validation.check_dataset_spec`); the same for `validation_data`.
        Each batch of a dataset is then checked as it is made
        (`validation.checked_dataset`). Bad input raises a one-line
        `ValueError` saying what is wrong and how to fix it. (Keras
        `PyDataset`s and generators are passed on unchecked.)

        Unless `callbacks` holds a `callbacks.TerminateOnNonFinite`, one is
        added: training stops at the first non-finite loss and `fit` raises
        `FloatingPointError` naming the terms that diverged. Pass your own
        `TerminateOnNonFinite()` to get the History back instead and read
        its `problem`.
        """
        x = self._checked_input(x, y, "x", "y")
        if validation_data is not None:
            validation_data = self._checked_validation(validation_data)
        callbacks = list(callbacks or [])
        guard = None
        if not any(isinstance(c, TerminateOnNonFinite) for c in callbacks):
            guard = TerminateOnNonFinite()
            callbacks.append(guard)
        callbacks = self._fit_callbacks(x, y, callbacks, verbose=kwargs.get("verbose", "auto"))
        counter = _BatchCounter()
        callbacks.append(counter)
        try:
            history = super().fit(x, y, *args, callbacks=callbacks, validation_data=validation_data, **kwargs)
        except tf.errors.InvalidArgumentError as error:
            message = validation.input_error(error)
            if message is None:
                raise
            raise ValueError(message) from None
        if guard is not None and guard.problem:
            raise FloatingPointError(guard.problem)
        if counter.epochs and not counter.batches:
            raise ValueError("fit ran no training step: the data gave no batch. Give a dataset with at least "
                             "one batch (drop_remainder=True drops a last batch smaller than the batch size).")
        return history

    def _fit_callbacks(self, x, y, callbacks: list, verbose="auto") -> list:
        """The callbacks `fit` runs; models with a forget rate add theirs (`ForgetRateMixin`).
        `verbose` is fit's: whether work done before training may say so."""
        return callbacks

    def _checked_input(self, x, y, what: str, labels_what: str):
        """x as `fit` passes it on: a dataset gains its batch checks; arrays are checked and kept as given."""
        shape = tuple(self.classifier.input_shape[1:])
        classes = int(self.classifier.output_shape[-1])
        if isinstance(x, tf.data.Dataset):
            if y is not None:
                raise ValueError(f"{what} is a tf.data.Dataset, which holds the labels; leave {labels_what} unset.")
            return validation.checked_dataset(x, num_classes=classes, input_shape=shape, what=what)
        if not validation.is_array_like(x):  # a PyDataset, a generator, a distributed dataset
            return x
        validation.check_arrays(x, y, num_classes=classes, input_shape=shape, what=what,
                                labels_what=labels_what)
        return x

    def _checked_validation(self, validation_data):
        if isinstance(validation_data, tf.data.Dataset):
            return self._checked_input(validation_data, None, "validation_data", "")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be (x_val, y_val) or a tf.data.Dataset of (x, y) batches; "
                             "the label-noise models take no sample weights.")
        x, y = validation_data
        self._checked_input(x, y, "validation_data[0]", "validation_data[1]")
        return validation_data

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

    def compile_from_config(self, config):
        """Compiles a loaded model as the saved one was (its optimizer, whose state then
        loads too). Keras' own skips models with a custom `compile`, with a warning."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def call(self, inputs, training=False):
        """The classifier's class probabilities (uint8 inputs are scaled to [0, 1])."""
        # Keras' cross-entropy recovers the logits behind this softmax, so
        # losses computed from the probabilities stay numerically stable.
        return keras.activations.softmax(float32(self.classifier, to_float(inputs), training))

    def _regularization(self):
        """The layers' own losses (weight decay), divided by the replicas like the rest.

        Every model adds it to the loss it minimises; it is 0.0 for networks
        without regularizers (the library's own have none).
        """
        if not self.losses:
            return 0.0
        return tf.add_n(self.losses) / tf.distribute.get_strategy().num_replicas_in_sync

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
        config = {
            "name": self.name,
            "classifier": keras.saving.serialize_keras_object(self.classifier),
            "seed": self.seed,
        }
        # The policy the model's networks compute in, when the classifier's is
        # the same (a `dtype` given, or one global policy when all were built),
        # so that a loaded model computes as the saved one did.
        policy = self.dtype_policy.name
        if policy in networks.PRECISIONS and networks.policy_of(self.classifier) == policy:
            config["dtype"] = policy
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)
