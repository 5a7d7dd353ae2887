"""Training from a config: data -> noise -> model -> `fit` -> work directory.

`train(config, workdir)` is what the command line runs (`scripts/train.py`);
it uses only the public API (`data`, `clothing1m`, `noise`, `networks`,
`CausalNL`), so a user's own script can do the same in a few lines. Datasets
held in memory get synthetic noise; Clothing1M, read from its image files,
keeps its real noisy labels (`noise.type="real"`) and has no clean training
labels. The work directory gets:

  config.json          the full config of the run
  noise.json           realised noise rate and empirical transition matrix
                       (synthetic noise only)
  noisy_labels.npy     the noisy training labels (the noise file; synthetic
                       noise only)
  noise_estimate.json  the anchor-point transition matrix and noise rate
                       estimated from the noisy labels alone, for methods that
                       need them (Forward, Reweight, T-Revision) and for
                       forget_rate="auto"
  metrics.csv          one row per epoch: every loss term, accuracies, forget rate
                       (clean_accuracy and selection_precision only where the
                       clean training labels are known)
  tensorboard/         TensorBoard logs
  backup/              the last completed epoch's weights, optimizer state and
                       epoch (tf_causalnl.checkpoints, written atomically): a
                       rerun resumes from it (and continues a finished run
                       when given more epochs)
  checkpoint.keras     the model after the last completed epoch
  model.keras          the final model
  pictures/            training curves, confusion matrix, noisy-label transition;
                       for CausalNL on images also reconstructions and class
                       samples (tf_causalnl.pictures; scripts/pictures.py redraws them)
  results.json         clean test accuracy: last epoch, and mean of the last 10
                       (of all epochs when there are fewer); the realised noise
                       rate (synthetic noise), the forget rate used and the
                       estimated noise rate where there is one; for CausalNL
                       on images, the decoder's test L1 error per pixel and
                       that of the per-pixel median image
                       (`pictures.reconstruction_quality`)
"""

import contextlib
import csv
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Callable, Sequence

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from tf_causalnl import callbacks as tf_callbacks
from tf_causalnl import (baselines, checkpoints, checks, clothing1m, data, distribute, losses,
                         networks, noise, pictures, transition)
from tf_causalnl.causalnl import CausalNL
from tf_causalnl.checkpoints import write_json

_log = logging.getLogger(__name__)

#: One dict from method name to model class. `build_model` passes each class
#: the config values its constructor names (see `_model_kwargs`).
METHODS = {
    "ce": baselines.NoisyLabelClassifier,
    "coteaching": baselines.CoTeaching,
    "decoupling": baselines.Decoupling,
    "mentornet": baselines.MentorNet,
    "mixup": baselines.Mixup,
    "forward": baselines.Forward,
    "reweight": baselines.Reweight,
    "trevision": baselines.TRevision,
    "causalnl": CausalNL,
}

#: The names `train.strategy` takes (see `tf_causalnl.distribute`).
STRATEGIES = distribute.STRATEGIES

#: The paper reports clean test accuracy averaged over the last 10 epochs.
LAST_EPOCHS = 10

#: Test images the pictures of a file dataset are drawn from.
PICTURE_TEST_EXAMPLES = 2000

#: The noise type of a dataset whose training labels are noisy as published.
REAL_NOISE = "real"

#: Datasets read from image files (not held in memory), by name: their
#: training labels carry real noise, and their clean training labels are unknown.
FILE_DATASETS = {clothing1m.NAME: clothing1m.load}


@dataclasses.dataclass
class Inputs:
    """What `train` fits a model on.

    Attributes:
        train: epoch -> the endless training batches from that epoch on, each
            epoch a function of (seed, epoch) (`data.train_dataset` with
            `initial_epoch`): (images, noisy labels or {"noisy", "clean"}).
        steps_per_epoch: Training batches per epoch.
        test: Batches of (images, clean labels).
        input_shape: Shape of one image.
        num_classes: Number of classes.
        estimate: The noise estimate, for runs that need one.
        results: Entries for results.json, e.g. the realised noise rate.
    """

    train: Callable[[int], tf.data.Dataset]
    steps_per_epoch: int
    test: tf.data.Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    estimate: transition.NoiseEstimate | None = None
    results: dict = dataclasses.field(default_factory=dict)
    dataset: data.Dataset | None = None
    noisy: np.ndarray | None = None


def load_noisy_data(config: ml_collections.ConfigDict) -> tuple[data.Dataset, np.ndarray, noise.NoiseReport]:
    """Loads the dataset named in the config and corrupts its training labels.

    Raises:
      FileNotFoundError, ValueError: missing or corrupt dataset files (from
        the loader), or data the configured run cannot train on
        (`checks.check_data`), before the noise is drawn.
    """
    dataset = data.load_dataset(config.data.name, config.data.data_dir or None)
    dataset = checks.check_data(dataset, config)
    if config.data.train_size:
        keep = _train_subset(len(dataset.y_train), config)
        dataset.x_train, dataset.y_train = dataset.x_train[keep], dataset.y_train[keep]
    if config.data.test_size:
        dataset.x_test = dataset.x_test[: config.data.test_size]
        dataset.y_test = dataset.y_test[: config.data.test_size]
    noisy = noise.make_noisy_labels(**_noise_arguments(config, dataset))
    return dataset, noisy, noise.noise_report(dataset.y_train, noisy, dataset.num_classes)


def true_transition_rows(config: ml_collections.ConfigDict, dataset: data.Dataset) -> np.ndarray:
    """(N, C) true P(Y~ | x_i, y_i) of the run's synthetic noise on `dataset`
    (as `load_noisy_data` returns it): what T(x) is scored against."""
    return noise.true_transition_rows(**_noise_arguments(config, dataset))


def _noise_arguments(config, dataset) -> dict:
    # Features for IDN: flattened pixel values times feature_scale (1.0 keeps
    # the raw 0-255 values of the public code; see noise.instance_dependent_noise).
    features = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32)
    return dict(noise_type=config.noise.type, labels=dataset.y_train, num_classes=dataset.num_classes,
                rate=config.noise.rate, features=features * config.noise.feature_scale,
                std=config.noise.std, seed=config.seed, match_rate=config.noise.match_rate)


def _train_subset(n: int, config: ml_collections.ConfigDict) -> np.ndarray:
    """Sorted indices of the seeded `config.data.train_size` training examples."""
    keep = np.random.default_rng(config.seed).permutation(n)
    return np.sort(keep[: config.data.train_size])


def prepare_inputs(config: ml_collections.ConfigDict, workdir: str) -> Inputs:
    """The training and test pipelines of the configured run, with their noise.

    A dataset held in memory gets the configured synthetic noise (written to
    noisy_labels.npy and noise.json) and, where the run needs it, the noise
    estimate; a file dataset (Clothing1M) keeps its real noisy labels.
    The data are loaded and checked first: the work directory and its
    config.json are made only when they pass (`_start_workdir`).
    """
    if config.data.name in FILE_DATASETS:
        inputs = file_inputs(config)
        checks.check_images_for_networks(inputs.input_shape, config)
        _start_workdir(config, workdir)
        return inputs
    dataset, noisy, report = load_noisy_data(config)
    _start_workdir(config, workdir)
    np.save(os.path.join(workdir, "noisy_labels.npy"), noisy)
    write_json(
        os.path.join(workdir, "noise.json"),
        {"type": config.noise.type, "requested_rate": config.noise.rate, **report.to_dict()},
    )
    estimate = estimate_noise(config, dataset, noisy, workdir) if needs_estimate(config) else None
    train = functools.partial(
        data.train_dataset, dataset.x_train, noisy, dataset.y_train,
        batch_size=config.train.batch_size,
        seed=config.seed,
        augment=config.data.augment,
        crop_padding=config.data.crop_padding,
        flip=config.data.flip,
    )
    test_ds = data.eval_dataset(dataset.x_test, dataset.y_test, batch_size=config.train.eval_batch_size)
    return Inputs(
        lambda epoch: train(initial_epoch=epoch),
        data.steps_per_epoch(len(noisy), config.train.batch_size), test_ds, dataset.input_shape,
        dataset.num_classes, estimate, {"realized_noise_rate": report.realized_rate}, dataset, noisy)


def file_inputs(config: ml_collections.ConfigDict) -> Inputs:
    """Pipelines over the image files of a real-noise dataset (Clothing1M)."""
    name = config.data.name
    if config.noise.type != REAL_NOISE:
        raise ValueError(
            f"The training labels of {name} are already noisy (real-world noise), so no "
            f'synthetic noise is added to them: set noise.type="{REAL_NOISE}" '
            f"(got {config.noise.type!r}).")
    if needs_estimate(config):
        raise ValueError(
            "The anchor-point noise estimate (methods forward, reweight, trevision and "
            f'forget_rate="auto") trains on the whole training set held in memory, '
            f"which {name} is too large for: choose another method and set "
            "model.forget_rate to a number.")
    dataset = FILE_DATASETS[name](config.data.data_dir)
    train_files, train_labels = dataset.train_files, dataset.train_labels
    if config.data.train_size:
        keep = _train_subset(len(train_labels), config)
        train_files, train_labels = train_files[keep], train_labels[keep]
    test_files, test_labels = dataset.test_files, dataset.test_labels
    if config.data.test_size:
        test_files, test_labels = test_files[: config.data.test_size], test_labels[: config.data.test_size]
    sizes = {"image_size": config.data.image_size or clothing1m.IMAGE_SIZE,
             "resize": config.data.resize or clothing1m.RESIZE}
    train = functools.partial(
        clothing1m.train_dataset, train_files, train_labels, batch_size=config.train.batch_size,
        seed=config.seed, augment=config.data.augment, flip=config.data.flip, **sizes)
    test_ds = clothing1m.eval_dataset(
        test_files, test_labels, batch_size=config.train.eval_batch_size, **sizes)
    side = sizes["image_size"]
    return Inputs(lambda epoch: train(initial_epoch=epoch),
                  data.steps_per_epoch(len(train_labels), config.train.batch_size), test_ds,
                  (side, side, 3), dataset.num_classes)


def needs_estimate(config: ml_collections.ConfigDict) -> bool:
    """Whether the run needs the noise estimate: a method that takes a
    transition matrix, or one with a forget rate set to "auto"."""
    parameters = inspect.signature(_method_class(config)).parameters
    auto = "forget_rate" in parameters and config.model.forget_rate == transition.AUTO
    return "transition" in parameters or auto


def estimate_noise(config: ml_collections.ConfigDict, dataset: data.Dataset, noisy: np.ndarray,
                   workdir: str) -> transition.NoiseEstimate:
    """The anchor-point estimate for this run's noisy labels, made once.

    It is cached as noise_estimate.json in `config.estimate.cache_dir` (keyed
    by everything it depends on) or, without one, in the work directory.
    """
    # Keys left unset (None) stay out, so that estimates cached before those
    # keys existed keep their file names.
    key = {"data": {k: v for k, v in config.data.to_dict().items() if v is not None},
           "noise": config.noise.to_dict(), "seed": config.seed,
           "classifier": config.model.classifier, "resnet_stem": config.model.resnet_stem,
           "estimate": {k: v for k, v in config.estimate.to_dict().items() if k != "cache_dir"},
           "batch_size": config.train.batch_size, "learning_rate": config.train.learning_rate}
    if config.model.pretrained:
        key["pretrained"] = config.model.pretrained
    if config.estimate.cache_dir:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = os.path.join(config.estimate.cache_dir, f"noise_estimate-{digest}.json")
    else:
        path = os.path.join(workdir, "noise_estimate.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _exclusive(path + ".lock"):  # processes sharing a cache make it once
        estimate = _read_estimate(path) or _make_estimate(config, dataset, noisy, path, key)
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(workdir):
        write_json(os.path.join(workdir, "noise_estimate.json"), {"key": key, "estimate": estimate.to_dict()})
    return estimate


def _read_estimate(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return transition.NoiseEstimate.from_dict(json.load(f)["estimate"])


@contextlib.contextmanager
def _exclusive(lock_path: str, stale_seconds: float = 3600.0):
    """Holds a lock file; waits while another process holds it (unless it is stale)."""
    while True:
        try:
            os.close(os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(lock_path) > stale_seconds:
                    os.remove(lock_path)  # left by a killed process
            except FileNotFoundError:
                pass
            time.sleep(1.0)
    try:
        yield
    finally:
        os.remove(lock_path)


def _make_estimate(config, dataset, noisy, path, key):
    estimate = transition.estimate_noise(
        _classifier(config, dataset.input_shape, dataset.num_classes),
        dataset.x_train,
        noisy,
        epochs=config.estimate.epochs,
        batch_size=config.train.batch_size,
        learning_rate=config.train.learning_rate,
        holdout=config.estimate.holdout,
        percentile=config.estimate.percentile,
        seed=config.seed,
    )
    write_json(path, {"key": key, "estimate": estimate.to_dict()})
    return estimate


def build_model(config: ml_collections.ConfigDict, input_shape, num_classes: int,
                estimate: transition.NoiseEstimate | None = None) -> keras.Model:
    """Builds and compiles the model the config describes (call inside a strategy scope),
    its networks under `train.precision`.

    `estimate` supplies the transition matrix of Forward, Reweight and
    T-Revision, and the forget rate when the config says "auto".
    """
    method = _method_class(config)
    with networks.precision(config.train.get("precision")):  # every network, and the model's own policy
        model = method(
            _classifier(config, input_shape, num_classes),
            **_model_kwargs(config, inspect.signature(method).parameters, estimate),
        )
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate),
                  jit_compile=bool(config.train.get("jit_compile")))
    return model


def _method_class(config):
    if config.model.method not in METHODS:
        raise ValueError(f"Unknown method {config.model.method!r}; choose one of {sorted(METHODS)}.")
    return METHODS[config.model.method]


def _classifier(config, input_shape, num_classes):
    m = config.model
    if m.classifier in networks.PRETRAINED_CLASSIFIERS:
        kwargs = {"weights": m.pretrained or None}
    elif m.pretrained:
        raise ValueError(
            f"model.pretrained={m.pretrained!r} needs a classifier with pretrained weights "
            f"({', '.join(networks.PRETRAINED_CLASSIFIERS)}), but model.classifier is "
            f'{m.classifier!r}; change the classifier or set model.pretrained="".')
    else:
        kwargs = {"stem": m.resnet_stem} if m.classifier.startswith("resnet") else {}
    return networks.build_classifier(m.classifier, input_shape, num_classes, **kwargs)


def _model_kwargs(config, parameters, estimate) -> dict:
    """The config values a method's constructor takes, by parameter name."""
    m = config.model
    forget_rate = m.forget_rate
    if forget_rate == transition.AUTO:
        if estimate is None:
            raise ValueError('forget_rate="auto" needs the noise estimate; see training.estimate_noise.')
        forget_rate = estimate.noise_rate
    values = {
        "z_dim": m.z_dim, "beta0": m.beta0, "beta1": m.beta1, "beta2": m.beta2, "beta3": m.beta3,
        "objective": m.get("objective") or losses.DEFAULT_OBJECTIVE,
        "reconstruction_error": m.get("reconstruction_error"),
        "reconstruction_pixels": m.get("reconstruction_pixels"),
        "detach_reconstruction": m.get("detach_reconstruction"),
        "label_gradient": m.get("label_gradient"),
        "forget_rate": forget_rate, "ramp_epochs": m.ramp_epochs,
        "selection": m.get("selection") or losses.DEFAULT_SELECTION, "temperature": m.temperature,
        "alpha": m.mixup_alpha, "vae_depth": m.vae_depth, "vae_width": m.vae_width,
        "seed": config.seed,
    }
    if "transition" in parameters:
        if estimate is None:
            raise ValueError(f"{m.method} needs an estimated transition matrix; see training.estimate_noise.")
        values["transition"] = estimate.transition.tolist()
    return {name: value for name, value in values.items() if name in parameters}


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
    work directory first (`checks.check_config`, `checks.check_workdir`),
    then the loaded data (`checks.check_data`, in `prepare_inputs`). The work
    directory is made only once they pass.
    """
    checks.check_config(config)
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
    if hasattr(model, "forget_rate"):
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
    if not (isinstance(model, CausalNL) and pictures.is_image_model(model) and inputs.dataset is not None):
        return {}
    quality = pictures.reconstruction_quality(model, inputs.dataset.x_test[:PICTURE_TEST_EXAMPLES])
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
    """Draws the run's pictures into `<workdir>/pictures/` (see `tf_causalnl.pictures`).

    In-memory data gives every picture; a file dataset (Clothing1M) gives them
    from the first `PICTURE_TEST_EXAMPLES` test images, without the true
    transition (its clean training labels are unknown).
    """
    if inputs.dataset is not None:
        d = inputs.dataset
        return pictures.write_pictures(
            workdir, model, d.x_test, d.y_test, x_train=d.x_train, noisy_labels=inputs.noisy,
            clean_labels=d.y_train, class_names=pictures.dataset_class_names(d), seed=seed)
    batches = list(inputs.test.unbatch().batch(PICTURE_TEST_EXAMPLES).take(1).as_numpy_iterator())
    x_test, y_test = batches[0] if batches else (np.zeros((0, *inputs.input_shape)), np.zeros(0, int))
    return pictures.write_pictures(workdir, model, x_test, y_test, seed=seed)


def _start_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Makes the work directory and writes config.json, once the config and data passed."""
    os.makedirs(workdir, exist_ok=True)
    write_json(os.path.join(workdir, "config.json"), config.to_dict())


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
