"""DivideMix's training on the model side: the per-epoch split, the warm-up, the mixed loss.

`DivideMixTraining` is a mixin for two-network models (`DivideMix`, and
`InstanceGM`, which is CausalNL with this split instead of co-teaching). At
the start of each epoch after the warm-up, `fit` makes one pass over the
training data in inference mode, takes each network's cross-entropy on the
noisy labels, and fits a two-component GMM to it (`dividemix_losses.
clean_probability`); network 1 then trains on network 2's split and network
2 on network 1's. The split is a table of one clean probability per
training example, read in the step by the example's index, so the labels
`fit` sees carry an "index": `fit` adds it to arrays itself; a
`tf.data.Dataset` must carry it (`data.train_dataset(..., with_index=True)`).

What differs from the public DivideMix code, for a model trained by `fit`:
each batch is split into its labelled and unlabelled rows instead of drawing
equal labelled and unlabelled batches; one augmented view per example
instead of two; the two networks update in the same step instead of one
epoch after the other; lambda_u's ramp moves once an epoch.
"""

import keras
import numpy as np
import tensorflow as tf

from tf_causalnl import validation
from tf_causalnl.data import to_float
from tf_causalnl.models import dividemix_losses as dm
from tf_causalnl.models import losses
from tf_causalnl.models.wrapper import float32

#: The key of a label dict that holds each example's position in the training set.
INDEX = validation.INDEX_KEY
#: The terms logged beside the loss (means over the two networks; 0 during the warm-up).
TERMS = ("labelled", "unlabelled", "penalty", "labelled_share")
_BATCH = 512


class _Split:
    """The clean-probability tables, outside Keras' tracking: made again by every pass, never saved."""

    def __init__(self, num_examples: int):
        self.num_examples = num_examples
        self.tables = [tf.Variable(tf.ones([num_examples]), trainable=False) for _ in range(2)]


class _DivideEachEpoch(keras.callbacks.Callback):
    """Sets the model's epoch and, after the warm-up, its split, before each epoch."""

    def __init__(self, split_data):
        super().__init__()
        self.split_data = split_data

    def on_epoch_begin(self, epoch, logs=None):
        self.model.divide(epoch, self.split_data)


class DivideMixTraining:
    """The DivideMix half of a two-network model; see the module's docstring.

    Subclasses call `_init_division` in `__init__` (and hold the trackers it
    returns) and `_division_config` in `get_config`, and use
    `_warmup_or_dividemix_loss` in their `train_step`.
    """

    def _init_division(self, warmup_epochs, p_threshold, sharpen_temperature, mixmatch_alpha, lambda_u,
                       rampup_epochs) -> dict:
        """Checks and keeps the hyper-parameters; returns the trackers of `TERMS`, for the subclass to hold."""
        validation.check_whole(warmup_epochs, "warmup_epochs", 0)
        validation.check_number(p_threshold, "p_threshold", above=0.0, at_most=1.0)
        validation.check_number(sharpen_temperature, "sharpen_temperature", above=0.0)
        validation.check_number(mixmatch_alpha, "mixmatch_alpha", above=0.0)
        validation.check_number(lambda_u, "lambda_u", at_least=0.0)
        validation.check_whole(rampup_epochs, "rampup_epochs", 0)
        self.warmup_epochs = int(warmup_epochs)
        self.p_threshold = float(p_threshold)
        self.sharpen_temperature = float(sharpen_temperature)
        self.mixmatch_alpha = float(mixmatch_alpha)
        self.lambda_u = float(lambda_u)
        self.rampup_epochs = int(rampup_epochs)
        # Read by the step, set before each epoch by `divide`.
        self.epoch_variable = keras.Variable(0.0, trainable=False, dtype="float32", name="current_epoch")
        self._split = None
        return {name: keras.metrics.Mean(name=name) for name in TERMS}

    def _division_config(self) -> dict:
        return {"warmup_epochs": self.warmup_epochs, "p_threshold": self.p_threshold,
                "sharpen_temperature": self.sharpen_temperature, "mixmatch_alpha": self.mixmatch_alpha,
                "lambda_u": self.lambda_u, "rampup_epochs": self.rampup_epochs}

    def fit(self, x=None, y=None, *args, split_data=None, callbacks=None, **kwargs):
        """`keras.Model.fit`, with each example's index added to array labels and the split made each epoch.

        Args:
          x, y: as for `fit`; a `tf.data.Dataset` must yield labels as a dict
            with "noisy" and "index" (`data.train_dataset(..., with_index=True)`).
          split_data: (x, noisy labels) arrays in the dataset's order, which
            the per-epoch pass reads without augmentation; None reads the
            arrays given as `x`, or one epoch of the dataset.
        """
        if isinstance(x, tf.data.Dataset):
            labels = x.element_spec[1] if isinstance(x.element_spec, tuple) else None
            if not isinstance(labels, dict) or INDEX not in labels:
                raise ValueError(
                    f"{type(self).__name__} keeps a clean probability per training example, so a dataset's "
                    f"labels must be a dict with 'noisy' and '{INDEX}' (each example's position in the "
                    "training set): build it with data.train_dataset(..., with_index=True), or pass arrays.")
            if split_data is not None:
                num_examples = len(split_data[1])
            elif int(x.cardinality()) >= 0:
                split_data = x
                num_examples = 1 + max(int(tf.reduce_max(batch[INDEX])) for _, batch in x)
            elif kwargs.get("epochs", 1) > self.warmup_epochs:
                raise ValueError(f"{type(self).__name__} splits the training data before each epoch after the "
                                 "warm-up, and this dataset may never end: pass split_data=(x_train, "
                                 "noisy_labels), the arrays it draws from, in its index order.")
            else:
                num_examples = 1  # every epoch of this fit is a warm-up epoch: no split to hold
        elif validation.is_array_like(x):  # checked by ClassifierWrapper.fit, index included
            y = dict(y) if isinstance(y, dict) else {"noisy": y}
            num_examples = len(x)
            y[INDEX] = np.arange(num_examples, dtype=np.int32)
            split_data = split_data if split_data is not None else (x, y["noisy"])
        else:
            raise ValueError(f"{type(self).__name__}.fit takes arrays, or a tf.data.Dataset of (x, labels) "
                             "batches.")
        self._make_split(num_examples)
        callbacks = [_DivideEachEpoch(split_data), *(callbacks or [])]
        return super().fit(x, y, *args, callbacks=callbacks, **kwargs)

    def divide(self, epoch: int, split_data) -> None:
        """Sets the epoch and, after the warm-up, each network's clean probabilities from a pass over the data."""
        self.epoch_variable.assign(float(epoch))
        if epoch < self.warmup_epochs:
            return
        indices, per_network = self._network_losses(split_data)
        for table, network_losses in zip(self._split.tables, per_network):
            values = np.ones(self._split.num_examples, np.float32)
            values[indices] = dm.clean_probability(network_losses, seed=self.seed)
            table.assign(values)

    def _make_split(self, num_examples: int) -> None:
        if self._split is None or self._split.num_examples != num_examples:
            self._split = _Split(num_examples)
            self.train_function = None  # the step reads the tables: trace it again

    def _network_losses(self, split_data):
        """(indices, [losses of network 1, of network 2]) over one pass, in inference mode."""
        step = tf.function(lambda xb, yb: tf.stack([
            losses.cross_entropy(float32(network, to_float(xb), False), yb) for network in self.classifiers]))
        indices, values = [], []
        if isinstance(split_data, tf.data.Dataset):
            for xb, yb in split_data:
                indices.append(yb[INDEX].numpy())
                values.append(step(xb, yb["noisy"]).numpy())
        else:
            x, noisy = split_data
            for start in range(0, len(x), _BATCH):
                indices.append(np.arange(start, min(start + _BATCH, len(x))))
                values.append(step(x[start:start + _BATCH], np.asarray(noisy[start:start + _BATCH])).numpy())
        return np.concatenate(indices), list(np.concatenate(values, axis=1))

    def _mixed_loss(self, x, labels, index, logits, seeds) -> tuple[tf.Tensor, dict, tuple]:
        """Both networks' DivideMix loss on the batch, given their logits of `x` (for the targets)."""
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), self.num_classes)
        predictions = [tf.stop_gradient(tf.nn.softmax(z)) for z in logits]
        guessed = dm.co_guess(predictions[0], predictions[1], self.sharpen_temperature)
        ramp = dm.linear_rampup(self.epoch_variable, self.warmup_epochs, self.rampup_epochs)
        total, terms, masks = 0.0, {name: 0.0 for name in TERMS}, []
        for k in (0, 1):
            w = tf.gather(self._split.tables[1 - k], tf.cast(index, tf.int32))  # the peer's split
            labelled = tf.cast(w > self.p_threshold, tf.float32)
            refined = dm.co_refine(one_hot, w, predictions[k], self.sharpen_temperature)
            targets = labelled[:, None] * refined + (1.0 - labelled[:, None]) * guessed
            lam, permutation = self._mix_draw(tf.shape(x)[0], seeds[k])
            mixed_x, mixed_t = dm.mixmatch(x, tf.stop_gradient(targets), lam, permutation)
            out = dm.dividemix_loss(float32(self.classifiers[k], mixed_x, True), mixed_t, labelled,
                                    self.lambda_u * ramp)
            total += out["loss"]
            for name in ("labelled", "unlabelled", "penalty"):
                terms[name] += 0.5 * out[name]
            terms["labelled_share"] += 0.5 * tf.reduce_mean(labelled)
            masks.append(labelled)
        return total, terms, tuple(masks)

    def _warmup_or_dividemix_loss(self, x, labels, index, logits, seeds):
        """(loss for the global batch, terms, masks): CE during the warm-up, DivideMix's loss after it."""
        replicas = float(tf.distribute.get_strategy().num_replicas_in_sync)

        def warmup():
            ce = sum(tf.reduce_mean(losses.cross_entropy(z, labels)) for z in logits)
            ones = tf.ones_like(tf.cast(labels, tf.float32))
            return ce, {name: tf.constant(0.0) for name in TERMS}, (ones, ones)

        loss, terms, masks = tf.cond(self.epoch_variable < float(self.warmup_epochs), warmup,
                                     lambda: self._mixed_loss(x, labels, index, logits, seeds))
        return loss / replicas, terms, masks

    def _mix_draw(self, batch: tf.Tensor, seed: tf.Tensor):
        """MixMatch's lambda ~ Beta(alpha, alpha) and a permutation of the batch, from a stateless seed."""
        seeds = tf.random.experimental.stateless_split(seed, num=3)
        shape = tf.constant([1])
        g1 = tf.random.stateless_gamma(shape, seeds[0], alpha=self.mixmatch_alpha)
        g2 = tf.random.stateless_gamma(shape, seeds[1], alpha=self.mixmatch_alpha)
        permutation = tf.argsort(tf.random.stateless_uniform(tf.reshape(batch, [1]), seeds[2]))
        return (g1 / (g1 + g2))[0], permutation

    def _mix_seeds(self, step: tf.Tensor) -> tf.Tensor:
        """Two stateless seeds for this step's mixing, one per network: a function of (seed, step)."""
        base = tf.stack([tf.constant(self.seed, tf.int64) + 1_000_003, tf.cast(step, tf.int64)])
        return tf.random.experimental.stateless_split(base, num=2)

    @staticmethod
    def _log_division(terms: dict, trackers: dict) -> dict:
        for name, value in terms.items():
            trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in trackers.items()}
