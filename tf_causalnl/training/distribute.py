"""Training beyond one device: strategies by name, and a multi-worker `fit`.

`make_strategy` turns the config's `train.strategy` into a `tf.distribute`
strategy:

  default       one device (TensorFlow's default strategy)
  mirrored      every local device (`MirroredStrategy`)
  multi_worker  several machines (`MultiWorkerMirroredStrategy`), each
                running the same command with its own `TF_CONFIG`

Under `mirrored`, Keras' own `model.fit` trains. Under `multi_worker` it
cannot: Keras 3.15's `fit` reduces per-replica values in two places that
`MultiWorkerMirroredStrategy` rejects (keras-team/keras issue 20585), so
`fit` below runs the model's own `train_step` through `strategy.run` in a
short loop with Keras' `CallbackList`. It uses only public APIs, so a Keras
release cannot silently change what it does; `tests/test_distribute.py`
checks that Keras' `fit` still fails there, and says to retire this loop
when it stops failing.

Each replica trains on a contiguous slice of the global batch (replica r
gets rows r*b .. r*b + b - 1), the layout Keras' `fit` gives under
`mirrored`. The models divide their losses by the global batch, so a step
on several devices computes the same gradient as on one, with two
exceptions that are per replica by design, as in PyTorch's
DistributedDataParallel: batch normalisation (each replica normalises with
its own batch statistics and keeps its own moving averages; the chief's are
saved), and co-teaching's small-loss selection, which keeps exactly
round((1 - forget_rate) * b) of each replica's b examples.
"""

import json
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tf_causalnl.models.callbacks import with_forget_rate_schedule

DEFAULT = "default"
MIRRORED = "mirrored"
MULTI_WORKER = "multi_worker"
STRATEGIES = (DEFAULT, MIRRORED, MULTI_WORKER)

#: The process's mirrored and multi-worker strategies, made once each (see make_strategy).
_made: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy named by `train.strategy` (see the module docstring).

    `multi_worker` reads the cluster from the `TF_CONFIG` environment
    variable and must be made before TensorFlow runs any operation. A
    process makes each of `mirrored` and `multi_worker` once and later calls
    return it: with two MirroredStrategy objects over the same devices in
    one process, a `train` under the second failed in the test suite with
    "Shape mismatch in the collective instance" in Adam's all-reduce.

    Raises:
      ValueError: an unknown name, or `multi_worker` without a usable `TF_CONFIG`.
    """
    if name == DEFAULT:
        return tf.distribute.get_strategy()
    if name not in (MIRRORED, MULTI_WORKER):
        raise ValueError(f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")
    if name not in _made:
        if name == MULTI_WORKER:
            _check_tf_config()
        _made[name] = (tf.distribute.MirroredStrategy() if name == MIRRORED
                       else tf.distribute.MultiWorkerMirroredStrategy())
    return _made[name]


def _check_tf_config() -> None:
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            'train.strategy="multi_worker" needs the cluster in the TF_CONFIG environment '
            f"variable of every worker, e.g. {example} (index 1 on the second machine).")
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        task = tf_config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not a usable cluster description ({error}); "
                         f"expected e.g. {example}.") from None
    if task.get("type") == "worker" and not 0 <= index < len(workers):
        raise ValueError(f"TF_CONFIG's task index {index} is outside its {len(workers)} workers.")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on the
    non-chief workers of a multi-worker cluster (worker 0 is the chief when
    the cluster names no "chief" task)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


def replica_slices(dataset: tf.data.Dataset, context: tf.distribute.InputContext) -> tf.data.Dataset:
    """This input pipeline's share of a dataset of global batches.

    Each global batch of B rows is cut into one slice of B / R rows per
    replica (R replicas in all, in replica order); the pipeline yields the
    slices of its own replicas, one element per replica, as
    `distribute_datasets_from_function` expects. Every worker reads and
    augments whole global batches and keeps its share: simple and exact, at
    the price of reading the data once per worker.
    """
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local

    def mine(t):
        shape = tf.shape(t)
        slices = tf.reshape(t, tf.concat([[replicas, shape[0] // replicas], shape[1:]], axis=0))
        return slices[first:first + local]

    return dataset.map(lambda *batch: tf.nest.map_structure(mine, batch)).unbatch()


def fit(model: keras.Model, epoch_data: Callable[[int], tf.data.Dataset], *, epochs: int,
        steps_per_epoch: int, initial_epoch: int = 0, validation_data: tf.data.Dataset | None = None,
        callbacks=None, verbose: int = 1) -> keras.callbacks.History:
    """`model.fit` for `MultiWorkerMirroredStrategy`: the model's `train_step` run by `strategy.run`.

    Args:
      model: a compiled model built in `strategy.scope()`.
      epoch_data: epoch -> that epoch's dataset of global batches (at least
        `steps_per_epoch` of them), e.g. `data.train_dataset(...,
        initial_epoch=epoch)`; each worker takes its replicas' slices
        (`replica_slices`).
      epochs, steps_per_epoch, initial_epoch, callbacks, verbose: as for
        `keras.Model.fit`. A model with a forget rate gets its
        `ForgetRateSchedule`, as its own `fit` adds it.
      validation_data: batches of (images, clean labels); every worker
        scores branch 1's classifier on all of them (`evaluate_classifier`)
        and logs `val_loss` and `val_accuracy`.

    Returns:
      The `History`, as `fit` returns it.
    """
    strategy = model.distribute_strategy
    if hasattr(model, "forget_rate_variable"):
        callbacks = with_forget_rate_schedule(callbacks)
    callback_list = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, verbose=verbose,
        epochs=epochs, steps=steps_per_epoch, model=model)

    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

    model.stop_training = False
    callback_list.on_train_begin()
    epoch_logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        batches = iter(strategy.distribute_datasets_from_function(
            lambda context, epoch=epoch: replica_slices(epoch_data(epoch), context)))
        logs = {}
        for index in range(steps_per_epoch):
            callback_list.on_train_batch_begin(index)
            logs = step(next(batches))
            callback_list.on_train_batch_end(index, logs)
            if model.stop_training:
                break
        epoch_logs = {name: float(value) for name, value in logs.items()}
        if validation_data is not None:
            scores = evaluate_classifier(model, validation_data)
            epoch_logs.update({f"val_{name}": value for name, value in scores.items()})
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs=epoch_logs)
    return model.history


def evaluate_classifier(model: keras.Model, dataset: tf.data.Dataset) -> dict:
    """Branch 1's mean cross-entropy (`loss`) and `accuracy` on (images, labels) batches.

    What the models' `test_step` logs, computed from `model.predict_on_batch`
    outside any replica context, so that it needs no collective operation:
    each worker of a cluster gets the same numbers from the same weights.
    """
    total_loss, correct, count = 0.0, 0, 0
    for x, labels in dataset.as_numpy_iterator():
        probabilities = np.asarray(model(x, training=False), np.float64)
        picked = probabilities[np.arange(len(labels)), labels]
        total_loss -= float(np.sum(np.log(np.maximum(picked, 1e-12))))
        correct += int(np.sum(probabilities.argmax(axis=1) == labels))
        count += len(labels)
    return {"loss": total_loss / max(count, 1), "accuracy": correct / max(count, 1)}
