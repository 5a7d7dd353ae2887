"""Checks that refuse bad input with a clear error, before any work is done.

Each error says what was wrong and how to fix it. `training.train` runs
them in this order, so that a refused run trains nothing and writes nothing:

  1. `check_config`: unknown keys (a config file that sets
     `config.train.epoch` by mistake), unknown names (method, dataset,
     strategy, classifier, noise type) and values out of range;
  2. `check_workdir`: a work directory that holds a run of another config;
  3. after loading, `check_data` (in `training.load_noisy_data`): labels,
     counts, ranks and non-finite values (`check_dataset`), data the
     configured networks cannot read (`check_images_for_networks`), and a
     batch larger than the training set (`check_batch_size`).

The rules themselves (number ranges, arrays, labels) live in
`tf_causalnl.validation`, which the models' constructors and `fit()` apply
too, so that the config path and the Python API refuse the same input with
the same message.

Missing or corrupt dataset files are refused by the loaders themselves
(`data.load_fashion_mnist`, `data.read_idx`, `clothing1m.load`), with the
command that installs or reinstalls them. docs/ERRORS.md lists every error.
"""

from __future__ import annotations

import difflib
import json
import numbers
import os
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from tf_causalnl import config as config_lib
from tf_causalnl import data, losses, networks, noise, transition, validation

#: Sections a config may hold beyond `base_config()`'s, and where they are read.
OPTIONAL_SECTIONS = {"grid": "tf_causalnl.grid", "moons": "tf_causalnl.moons",
                     "tune": "tf_causalnl.tuning"}

#: Keys that a resumed run may change (see `check_workdir`): they change
#: neither what is trained nor the results. `train.epochs` may grow too.
RESUMABLE_KEYS = ("train.verbose", "estimate.cache_dir", "train.strategy", "train.deterministic")

#: Integer keys and the smallest value each accepts; `model.vae_depth` may
#: also be None (its default, chosen from the image size).
_AT_LEAST = {
    "data.train_size": 0,  # 0 = every training example
    "data.test_size": 0,  # 0 = the whole test set
    "data.crop_padding": 0,
    "model.z_dim": 1,
    "model.vae_width": 1,
    "model.vae_depth": 1,
    "model.ramp_epochs": 0,
    "estimate.epochs": 1,
    "train.epochs": 1,
    "train.batch_size": 1,
    "train.eval_batch_size": 1,
}

#: Number keys that must be above zero.
_POSITIVE = ("model.temperature", "model.mixup_alpha", "train.learning_rate")

#: The objective's weights: numbers of at least 0, or None (the objective's own).
_BETAS = ("model.beta0", "model.beta1", "model.beta2", "model.beta3")

#: Classifiers that read vectors (N, D) as well as images; the others are
#: convolutional and need images (H, W, C).
_VECTOR_CLASSIFIERS = ("mlp",)

#: Classifiers with a fixed input layout: (channels, smallest height and
#: width). keras.applications' ResNet-50 takes RGB images of 32x32 or more.
_FIXED_INPUTS = {"resnet50_imagenet": (3, 32)}


def check_config(config: ml_collections.ConfigDict) -> None:
    """Refuses a config with unknown keys, unknown names or values out of range.

    Keys: every section and key must be one of `config.base_config()`'s, or
    of the optional sections (`OPTIONAL_SECTIONS`: `grid`, `moons`); an
    unlocked ConfigDict silently accepts a misspelt key, which would then be
    ignored. Every key of `base_config()` must be present.
    Names: `train.strategy`, `model.method`, `data.name`, `model.classifier`
    and `noise.type` must name an entry of their registries ("real" for a
    dataset whose labels are noisy as published, such as Clothing1M).
    Ranges: `noise.rate` in [0, 1), `noise.std` in [0, 1], `model.forget_rate`
    in [0, 1) or "auto", the counts of `_AT_LEAST` (e.g. `model.z_dim` >= 1)
    and the positive numbers of `_POSITIVE`.

    Args:
      config: a training config (or a grid or moons config).

    Raises:
      ValueError: the first problem found, with the valid keys, names or range.
    """
    _check_keys(config, _reference_config())
    _check_names(config)
    _check_ranges(config)


def _check_names(config: ml_collections.ConfigDict) -> None:
    """The names of `check_config`, and real noise only for a dataset that has it."""
    from tf_causalnl import training  # noqa: PLC0415 (training imports this module)

    check_choice("strategy", "train.strategy", config.train.strategy, training.STRATEGIES)
    if _lookup(config, "train.precision") is not None:  # None: float32
        check_choice("precision", "train.precision", config.train.precision, networks.PRECISIONS)
    check_choice("method", "model.method", config.model.method, training.METHODS)
    check_choice("dataset", "data.name", config.data.name, {*data.LOADERS, *training.FILE_DATASETS})
    check_choice("classifier", "model.classifier", config.model.classifier, networks.CLASSIFIERS)
    check_choice("noise type", "noise.type", config.noise.type, {*noise.NOISE_TYPES, training.REAL_NOISE})
    for what, key, valid in (("objective", "model.objective", losses.OBJECTIVES),
                             ("reconstruction error", "model.reconstruction_error", losses.ERRORS),
                             ("pixel reduction", "model.reconstruction_pixels", losses.PIXEL_REDUCTIONS),
                             ("selection", "model.selection", losses.SELECTIONS)):
        if _lookup(config, key) is not None:  # None: the objective's own
            check_choice(what, key, _lookup(config, key), valid)
    if config.noise.type == training.REAL_NOISE and config.data.name not in training.FILE_DATASETS:
        raise ValueError(
            f'noise.type="{training.REAL_NOISE}" trains on a dataset\'s own noisy labels, but the '
            f"labels of {config.data.name} are clean: choose a synthetic noise type "
            f"({', '.join(sorted(noise.NOISE_TYPES))}) or a dataset with real noise "
            f"({', '.join(sorted(training.FILE_DATASETS))}).")


def _check_ranges(config: ml_collections.ConfigDict) -> None:
    """The ranges of `check_config`."""
    noise.check_rate(config.noise.rate, "noise.rate")
    noise.check_std(config.noise.std, "noise.std")
    transition.check_forget_rate(config.model.forget_rate, "model.forget_rate")
    for key, minimum in _AT_LEAST.items():
        optional = key == "model.vae_depth"  # None: chosen from the image size
        validation.check_whole(_lookup(config, key), key, minimum, optional=optional,
                               hint=f"set it with --config.{key}=N (the default is "
                                    f"{_lookup(config_lib.base_config(), key)})")
    for key in _POSITIVE:
        validation.check_number(_lookup(config, key), key, above=0.0)
    for key in _BETAS:  # None: the objective's own
        validation.check_number(_lookup(config, key), key, at_least=0.0, optional=True,
                                hint="a beta weighs a term of the objective; 0 turns it off")
    validation.check_number(_lookup(config, "model.label_gradient"), "model.label_gradient", at_least=0.0,
                            at_most=1.0, optional=True, hint="None keeps the objective's (1)")


def check_choice(what: str, key: str, value: Any, valid: Iterable[str]) -> None:
    """Refuses a name that is not in `valid`, listing the valid names.

    Args:
      what: what the name names, e.g. "method".
      key: the dotted config key that holds it, e.g. "model.method".
      value: the name given.
      valid: the valid names (a registry's keys).

    Raises:
      ValueError: `value` is not in `valid`.
    """
    valid = sorted(valid)
    if value not in valid:
        close = difflib.get_close_matches(str(value), valid, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown {what} {value!r}; choose one of {valid} for config.{key}.{hint}")


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
    new = _plain(config)
    differences = config_differences(stored, new, ignore=RESUMABLE_KEYS + ("train.epochs",))
    old_epochs, new_epochs = _lookup(stored, "train.epochs"), _lookup(new, "train.epochs")
    if old_epochs != new_epochs and not (validation.is_whole(old_epochs, 1) and validation.is_whole(new_epochs, old_epochs)):
        differences = sorted([*differences, "train.epochs"])
    if differences:
        details = "; ".join(f"{key}: {_lookup(stored, key)!r} in config.json, {_lookup(new, key)!r} now"
                            for key in differences[:8])
        more = f" and {len(differences) - 8} more" if len(differences) > 8 else ""
        raise ValueError(
            f"{workdir} holds a run of a different config ({details}{more}). A rerun resumes "
            f"that run, so it may only add train.epochs or change {' or '.join(RESUMABLE_KEYS)}. "
            "Train into another work directory, or rerun with the config in "
            f"{path}.")


def config_differences(old: Mapping | ml_collections.ConfigDict,
                       new: Mapping | ml_collections.ConfigDict,
                       ignore: Sequence[str] = ()) -> list[str]:
    """The dotted keys whose values differ between two configs, sorted.

    Args:
      old, new: ConfigDicts, or the dicts their JSON files hold; both are
        compared as JSON (so a tuple equals a list). A key set to None counts
        as absent, so that a config stored before a key was added (with
        default None) compares equal.
      ignore: dotted keys left out; a section's name leaves out the section.

    Returns:
      E.g. ["model.z_dim", "train.epochs"]; empty when the configs agree.
    """
    old, new = _without_none(_plain(old)), _without_none(_plain(new))
    return [key for key in _differences(old, new)
            if not any(key == skip or key.startswith(skip + ".") for skip in ignore)]


def read_stored_config(path: str) -> dict | None:
    """The config stored as JSON at `path`, or None when there is no such file.

    Raises:
      ValueError: the file is not valid JSON.
    """
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON ({error}); it was cut short or edited by hand. Restore "
            "it, or use another work directory.") from error


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


def _reference_config() -> ml_collections.ConfigDict:
    """`base_config()` with an example of each optional section."""
    # noqa: PLC0415 below: moons and tuning import training, which imports this module.
    from tf_causalnl import moons, tuning  # noqa: PLC0415

    reference = config_lib.base_config()
    reference.grid = config_lib.table_1_grid(seeds=())
    reference.moons = moons.moons_config().moons
    reference.tune = tuning.tune_section()
    return reference


def _check_keys(config, reference, path: str = "") -> None:
    """Refuses keys that `reference` lacks, recursively, and keys of
    `base_config()` that `config` lacks (the optional sections' modules check
    their own keys' presence)."""
    section = f"config.{path[:-1]}" if path else "the config"
    for key in config.keys():
        if key not in reference:
            close = difflib.get_close_matches(key, list(reference.keys()), n=1)
            hint = f"Did you mean {path}{close[0]}? " if close else ""
            raise ValueError(
                f"Unknown config key {path}{key}: {section} has no key {key!r}. {hint}The valid "
                f"keys of {section} are: {', '.join(sorted(reference.keys()))}. Check the config "
                "file: an unknown key would be silently ignored.")
        if isinstance(reference[key], ml_collections.ConfigDict):
            if not isinstance(config[key], (ml_collections.ConfigDict, dict)):
                raise ValueError(
                    f"config.{path}{key} must be a section (a ConfigDict) with keys "
                    f"{', '.join(sorted(reference[key].keys()))}, got {config[key]!r}.")
            _check_keys(config[key], reference[key], f"{path}{key}.")
    if path.split(".")[0] in OPTIONAL_SECTIONS:
        return
    missing = sorted(set(reference.keys()) - set(config.keys()) - set(OPTIONAL_SECTIONS))
    if missing:
        raise ValueError(
            f"{section} lacks the keys {', '.join(missing)}; build configs from "
            "tf_causalnl.config.base_config() so that every key is set.")


def _lookup(config, key: str):
    """The value at a dotted key of a config or dict; None when absent."""
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node.keys():
            return None
        node = node[part]
    return node


def _plain(config) -> dict:
    """A config as its JSON file holds it: plain dicts, lists, numbers and strings."""
    if isinstance(config, ml_collections.ConfigDict):
        config = config.to_dict()
    return json.loads(json.dumps(config))


def _without_none(node):
    if not isinstance(node, dict):
        return node
    return {key: _without_none(value) for key, value in node.items() if value is not None}


def _differences(old, new, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [prefix] if old != new and prefix else []
    return [d for key in sorted(set(old) | set(new))
            for d in _differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)]
