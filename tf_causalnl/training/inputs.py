"""A run's inputs from its config: the dataset, its noisy labels, the subset, the noise report."""

import dataclasses
import functools
import os
from typing import Callable

import ml_collections
import numpy as np
import tensorflow as tf

from tf_causalnl import data, noise
from tf_causalnl.checkpoints import write_json
from tf_causalnl.data import clothing1m
from tf_causalnl.noise import estimation
from tf_causalnl.models.division import DivideMixTraining
from tf_causalnl.training import checks
from tf_causalnl.training.estimate import estimate_noise, needs_estimate
from tf_causalnl.training.registry import FILE_DATASETS, METHODS, REAL_NOISE


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
    estimate: estimation.NoiseEstimate | None = None
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
        batch_size=config.train.batch_size, with_index=needs_index(config),
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


def _start_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Makes the work directory and writes config.json, once the config and data passed."""
    os.makedirs(workdir, exist_ok=True)
    write_json(os.path.join(workdir, "config.json"), config.to_dict())


def needs_index(config: ml_collections.ConfigDict) -> bool:
    """Whether the method keeps a value per training example (DivideMix's split), read by each example's index."""
    return issubclass(METHODS[config.model.method], DivideMixTraining)
