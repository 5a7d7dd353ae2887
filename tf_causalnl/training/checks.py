"""A run's work directory, data, images and batch size checked against its config before any work."""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_collections

from tf_causalnl import data, networks, validation
from tf_causalnl.training.config_checks import lookup, to_plain, config_differences, upgrade_stored_config


#: Keys that a resumed run may change (see `check_workdir`): they change
#: neither what is trained nor the results. `train.epochs` may grow too.
RESUMABLE_KEYS = ("train.verbose", "estimate.cache_dir", "train.strategy", "train.deterministic")
#: Classifiers that read vectors (N, D) as well as images; the others are
#: convolutional and need images (H, W, C).
_VECTOR_CLASSIFIERS = ("mlp",)
#: Classifiers with a fixed input layout: (channels, smallest height and
#: width). keras.applications' ResNet-50 takes RGB images of 32x32 or more.
_FIXED_INPUTS = {"resnet50_imagenet": (3, 32)}


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses a work directory that holds a run of a different config.

    The rule: a directory without `config.json` holds no run and is accepted.
    Otherwise `config` must equal the stored `config.json`, except in what a
    resumed run may change:
      - `train.epochs` may grow: a finished run continues for the extra
        epochs (it may not shrink: that run has already trained longer);
      - `RESUMABLE_KEYS` (`train.verbose`, `estimate.cache_dir`, `train.strategy`,
        `train.deterministic`) may change;
      - a key unset (None) on one side and absent on the other counts as
        equal, so that runs stored before a key was added stay valid.
    Any other difference would mix two runs in one directory (its backup,
    metrics.csv and noisy labels), so it is refused before anything is
    written; train into another work directory instead.

    Args:
      config: the config of the run about to start.
      workdir: its work directory (it need not exist).

    Raises:
      ValueError: `workdir` is a file, holds an unreadable config.json, or
        holds a run of a config that differs (the keys and both values are
        named).
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"The work directory {workdir} is a file; choose another --workdir.")
    path = os.path.join(workdir, "config.json")
    stored = read_stored_config(path)
    if stored is None:
        return
    new = to_plain(config)
    differences = config_differences(stored, new, ignore=RESUMABLE_KEYS + ("train.epochs",))
    old_epochs, new_epochs = lookup(stored, "train.epochs"), lookup(new, "train.epochs")
    if old_epochs != new_epochs and not (validation.is_whole(old_epochs, 1) and validation.is_whole(new_epochs, old_epochs)):
        differences = sorted([*differences, "train.epochs"])
    if differences:
        details = "; ".join(f"{key}: {lookup(stored, key)!r} in config.json, {lookup(new, key)!r} now"
                            for key in differences[:8])
        more = f" and {len(differences) - 8} more" if len(differences) > 8 else ""
        raise ValueError(
            f"{workdir} holds a run of a different config ({details}{more}). A rerun resumes "
            f"that run, so it may only add train.epochs or change {' or '.join(RESUMABLE_KEYS)}. "
            "Train into another work directory, or rerun with the config in "
            f"{path}.")


def read_stored_config(path: str) -> dict | None:
    """The config stored as JSON at `path`, or None when there is no such file.

    A config stored before a default changed reads with the value it ran with
    (`config_checks.upgrade_stored_config`).

    Raises:
      ValueError: the file is not valid JSON.
    """
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            stored = json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); it was cut short or edited by hand. Restore "
            "it, or use another work directory.") from error
    return upgrade_stored_config(stored) if isinstance(stored, dict) else stored


def check_data(dataset: data.Dataset, config: ml_collections.ConfigDict) -> data.Dataset:
    """Checks a loaded dataset against itself and against the config that will train on it.

    Runs `check_dataset`, then refuses `data.train_size` or `data.test_size`
    larger than the dataset, then `check_images_for_networks` and
    `check_batch_size` (one replica: the strategy's count is checked where
    the strategy is made).

    Returns:
      The dataset as `check_dataset` returns it.

    Raises:
      ValueError: the first problem found.
    """
    dataset = check_dataset(dataset)
    for split, x in (("train", dataset.x_train), ("test", dataset.x_test)):
        size = config.data[f"{split}_size"]
        if size > len(x):
            raise ValueError(
                f"data.{split}_size={size} asks for more {split} examples than "
                f"{dataset.name} has ({len(x):,}); set it to at most {len(x)}, or to 0 for all.")
    check_images_for_networks(dataset.input_shape, config)
    check_batch_size(config.train.batch_size, config.data.train_size or len(dataset.x_train))
    return dataset


def check_dataset(dataset: data.Dataset) -> data.Dataset:
    """Checks a dataset as `data.from_arrays` checks user arrays.

    Refused: inputs that are not (N, D) vectors or (N, H, W[, C]) images,
    NaN or infinite values, test inputs of another shape than the training
    inputs, a label count unlike the example count, and labels outside
    [0, num_classes).

    Returns:
      The dataset as `from_arrays` returns it: (N, H, W) images gain a channel
      axis and float inputs become float32.

    Raises:
      ValueError: naming the dataset and the problem.
    """
    try:
        return data.from_arrays(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test,
                                num_classes=dataset.num_classes, name=dataset.name)
    except ValueError as error:
        raise ValueError(f"Dataset {dataset.name!r}: {error}") from None


def check_images_for_networks(input_shape: Sequence[int], config: ml_collections.ConfigDict) -> None:
    """Refuses inputs the configured classifier and CausalNL's VAE cannot read.

    Accepted: vectors (D,) for the `mlp` classifier, and images (H, W, C) for
    every classifier, except that `resnet50_imagenet` (keras.applications'
    ResNet-50) needs RGB images of at least 32x32 pixels. The VAE's networks
    (`networks.build_latent_encoder`, `build_decoder`) take both layouts:
    their stride-2 layers use "same" padding and the decoder crops its output
    to the image size, so every image size and `vae_depth` builds and
    reconstructs (the default depth is 4 below 64 pixels and 5 from 64 up).

    Args:
      input_shape: the shape of one input, without the batch dimension.
      config: the training config (`model.classifier`).

    Raises:
      ValueError: naming the shape given and the shapes accepted.
    """
    shape = tuple(int(d) for d in input_shape)
    classifier = config.model.classifier
    if len(shape) not in (1, 3) or min(shape, default=0) < 1:
        raise ValueError(
            f"Inputs of shape {shape} fit no network: the networks take vectors of shape (D,) or "
            "images of shape (H, W, C), every size at least 1. Give the data as (N, D), "
            "(N, H, W) or (N, H, W, C) arrays.")
    if len(shape) == 1 and classifier not in _VECTOR_CLASSIFIERS:
        raise ValueError(
            f"model.classifier={classifier!r} is convolutional and takes images of shape "
            f"(H, W, C), but the inputs are vectors of shape {shape}; use "
            f"model.classifier={_VECTOR_CLASSIFIERS[0]!r} for vectors.")
    if classifier in _FIXED_INPUTS:
        channels, side = _FIXED_INPUTS[classifier]
        if shape[-1] != channels or min(shape[:2]) < side:
            raise ValueError(
                f"model.classifier={classifier!r} takes images of shape (H, W, {channels}) with H "
                f"and W at least {side}, but the inputs have shape {shape}. Use another classifier "
                f"({', '.join(sorted(set(networks.CLASSIFIERS) - set(_FIXED_INPUTS)))}) for "
                "these images.")


def check_batch_size(batch_size: int, num_examples: int | None, num_replicas: int = 1) -> None:
    """Refuses a batch size the training set or the strategy cannot use.

    Args:
      batch_size: the global batch size (`config.train.batch_size`), split
        evenly over the replicas.
      num_examples: the number of training examples (None: not known yet,
        only the split over the replicas is checked).
      num_replicas: the replicas of the distribution strategy
        (`strategy.num_replicas_in_sync`).

    Raises:
      ValueError: `batch_size` below 1, above `num_examples` (training drops
        the last incomplete batch, so an epoch would have no batch), or not a
        multiple of `num_replicas`.
    """
    if not validation.is_whole(batch_size, 1):
        raise ValueError(f"train.batch_size must be a whole number of at least 1, got {batch_size!r}.")
    if num_examples is not None and batch_size > num_examples:
        raise ValueError(
            f"train.batch_size={batch_size} is larger than the {num_examples:,} training examples, "
            "and an epoch drops its last incomplete batch, so it would have no batch at all; set "
            f"train.batch_size to at most {num_examples:,}, or train on more examples "
            "(data.train_size, 0 for all).")
    if batch_size % num_replicas:
        below = batch_size - batch_size % num_replicas
        choices = " or ".join(str(b) for b in (below, below + num_replicas)
                              if 0 < b <= (num_examples or b))
        raise ValueError(
            f"train.batch_size={batch_size} does not split evenly over the strategy's "
            f"{num_replicas} replicas; use a multiple of {num_replicas}"
            + (f", such as {choices}." if choices else "."))
