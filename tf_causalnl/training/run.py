"""One run: config -> data, noise, model, fit, and its work directory.

`train(config, workdir)` checks everything first, resumes from the last
epoch's backup after a kill, writes metrics.csv, the model and its pictures,
and returns the run's summary.
"""

import csv
import logging
import os
import shutil
import tempfile
import time
from typing import Sequence

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from tf_causalnl import checkpoints
from tf_causalnl.checkpoints import write_json
from tf_causalnl.models import callbacks as tf_callbacks
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.models.division import DivideMixTraining
from tf_causalnl.reports import probes, run_pictures
from tf_causalnl.training import checks, config_checks, distribute
from tf_causalnl.training.inputs import Inputs, prepare_inputs
from tf_causalnl.training.registry import build_model


_log = logging.getLogger(__name__)
#: The paper reports clean test accuracy averaged over the last 10 epochs.
LAST_EPOCHS = 10
#: Test images the pictures of a file dataset are drawn from.
PICTURE_TEST_EXAMPLES = 2000


def train(config: ml_collections.ConfigDict, workdir: str,
          callbacks: Sequence[keras.callbacks.Callback] = ()) -> dict:
    """Trains the configured model into `workdir` and returns the results.

    `callbacks` are added to the run's own (the divergence guard, CSVLogger,
    TensorBoard and the backup).

    A rerun on the same work directory resumes from the last completed epoch
    (`checkpoints.restore`): weights, optimizer state, epoch counter and
    forget-rate schedule come back from the backup, and each epoch's data
    and noise depend only on (seed, epoch), so a run killed at any moment
    and rerun ends as an uninterrupted one would.
    It may add `train.epochs` (to continue a finished run) or change
    `train.verbose`; a work directory holding a run of any other config is
    refused (`checks.check_workdir` states the rule).

    Bad input is refused with a ValueError (or FileNotFoundError for missing
    dataset files) before anything is trained or written: the config and the
    work directory first (`config_checks.check_config`, `checks.check_workdir`),
    then the loaded data (`checks.check_data`, in `prepare_inputs`). The work
    directory is made only once they pass.
    """
    config_checks.check_config(config)
    checks.check_workdir(config, workdir)
    keras.utils.set_random_seed(config.seed)

    strategy = distribute.make_strategy(config.train.strategy)
    checks.check_batch_size(config.train.batch_size, None, strategy.num_replicas_in_sync)
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    # On a cluster every worker runs this; only the chief writes the work
    # directory, the others write to a directory of their own, deleted after.
    chief = distribute.is_chief(strategy)
    run_dir = workdir if chief else tempfile.mkdtemp(prefix="tf_causalnl_worker_")
    try:
        return _train(config, workdir, run_dir, strategy, list(callbacks))
    finally:
        if not chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def _train(config, workdir, run_dir, strategy, user_callbacks) -> dict:
    inputs = prepare_inputs(config, run_dir)
    keras.utils.set_random_seed(config.seed)  # the same start with or without an estimate
    with strategy.scope():
        model = build_model(config, inputs.input_shape, inputs.num_classes, inputs.estimate)
    # Every worker resumes from the chief's backup (a shared file system on a cluster).
    initial_epoch = checkpoints.restore(model, os.path.join(workdir, "backup"))

    metrics_path = os.path.join(run_dir, "metrics.csv")
    _drop_rows_from(metrics_path, initial_epoch)
    guard = tf_callbacks.TerminateOnNonFinite()
    fit_callbacks = [
        guard,
        # Before the backup: an epoch's row is on disk before the epoch counts
        # as done, and a resumed run drops the rows of epochs it redoes.
        keras.callbacks.CSVLogger(metrics_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
        # Kept after the run, so that rerunning a finished run changes nothing
        # and a rerun with more epochs continues it.
        checkpoints.EpochBackup(os.path.join(run_dir, "backup"), os.path.join(run_dir, "checkpoint.keras")),
        *user_callbacks,
    ]
    fit_args = dict(epochs=config.train.epochs, steps_per_epoch=inputs.steps_per_epoch,
                    initial_epoch=initial_epoch, validation_data=inputs.test,
                    callbacks=fit_callbacks, verbose=config.train.verbose)
    start = time.perf_counter()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        distribute.fit(model, inputs.train, **fit_args)  # Keras' fit fails there (keras 20585)
    else:
        if isinstance(model, DivideMixTraining):  # its split reads the arrays, not the augmented batches
            fit_args["split_data"] = (inputs.dataset.x_train, inputs.noisy) if inputs.dataset else None
        # shuffle=False: the pipeline shuffles each epoch itself; this silences Keras' warning.
        model.fit(inputs.train(initial_epoch), shuffle=False, **fit_args)
    if guard.problem:
        raise FloatingPointError(guard.problem)
    checkpoints.write_atomically(os.path.join(run_dir, "model.keras"), model.save)

    results = summarize(metrics_path)
    results.update(
        seconds=round(time.perf_counter() - start, 1),
        **inputs.results,
        workdir=os.path.abspath(workdir),
    )
    if hasattr(model, "forget_rate") and not isinstance(model, DivideMixTraining):  # InstanceGM keeps, unused
        results["forget_rate"] = float(model.forget_rate)
    if inputs.estimate is not None:
        results["estimated_noise_rate"] = float(inputs.estimate.noise_rate)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        results.update(_reconstruction_quality(model, inputs))
    write_json(os.path.join(run_dir, "results.json"), results)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # On a cluster, Keras' predict (which the pictures use) needs every
        # worker; scripts/pictures.py draws them from the work directory after.
        write_pictures(run_dir, model, inputs, config.seed)
    return results


def _reconstruction_quality(model: keras.Model, inputs: Inputs) -> dict:
    """For CausalNL on in-memory images: branch 1's test L1 error against the median image's.

    Warns when the decoder does no better than the median image: it has
    learned nothing of the instances, so P(X) does not inform q(Y|X).
    """
    if not (isinstance(model, CausalNL) and probes.is_image_model(model) and inputs.dataset is not None):
        return {}
    quality = probes.reconstruction_quality(model, inputs.dataset.x_test[:PICTURE_TEST_EXAMPLES])
    if quality["reconstruction_l1"] >= 0.9 * quality["median_image_l1"]:
        _log.warning(
            "p(X|Y,Z) reconstructs the test images no better than their per-pixel median "
            "(L1 %.3f against %.3f): the generative half has not learned. See docs/OBJECTIVE.md.",
            quality["reconstruction_l1"], quality["median_image_l1"])
    return {"test_reconstruction_l1": quality["reconstruction_l1"],
            "median_image_l1": quality["median_image_l1"]}


def _drop_rows_from(metrics_path: str, epoch: int) -> None:
    """Drops the rows of metrics.csv for epochs >= `epoch`: a resumed run redoes them."""
    if not os.path.exists(metrics_path):
        return
    with open(metrics_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    kept = [row for row in rows if int(row["epoch"]) < epoch]
    if len(kept) == len(rows):
        return

    def write(temporary):
        with open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)
    checkpoints.write_atomically(metrics_path, write)


def write_pictures(workdir: str, model: keras.Model, inputs: Inputs, seed: int) -> list[str]:
    """Draws the run's pictures into `<workdir>/pictures/` (see `tf_causalnl.reports.run_pictures`).

    In-memory data gives every picture; a file dataset (Clothing1M) gives them
    from the first `PICTURE_TEST_EXAMPLES` test images, without the true
    transition (its clean training labels are unknown).
    """
    if inputs.dataset is not None:
        d = inputs.dataset
        return run_pictures.write_pictures(
            workdir, model, d.x_test, d.y_test, x_train=d.x_train, noisy_labels=inputs.noisy,
            clean_labels=d.y_train, class_names=run_pictures.dataset_class_names(d), seed=seed)
    batches = list(inputs.test.unbatch().batch(PICTURE_TEST_EXAMPLES).take(1).as_numpy_iterator())
    x_test, y_test = batches[0] if batches else (np.zeros((0, *inputs.input_shape)), np.zeros(0, int))
    return run_pictures.write_pictures(workdir, model, x_test, y_test, seed=seed)


def summarize(metrics_path: str) -> dict:
    """Clean test accuracy from a run's metrics.csv: last epoch and last-10 mean."""
    with open(metrics_path, newline="") as f:
        rows = list(csv.DictReader(f))
    accuracy = [float(row["val_accuracy"]) for row in rows]
    return {
        "epochs": len(rows),
        "clean_test_accuracy_last": accuracy[-1],
        f"clean_test_accuracy_mean_last_{LAST_EPOCHS}": float(np.mean(accuracy[-LAST_EPOCHS:])),
    }
