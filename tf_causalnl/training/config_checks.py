"""A config refused before any work: unknown keys, unknown names, values out of range.

Each message is one line that says what was wrong and how to fix it; a
misspelt key gets the nearest valid one.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from tf_causalnl import config as config_lib
from tf_causalnl import data, networks, noise, validation
from tf_causalnl.models import causalnl, forget_rate, losses
from tf_causalnl.training import distribute, registry
from tf_causalnl.models import selection


#: Sections a config may hold beyond `base_config()`'s, and where they are read.
OPTIONAL_SECTIONS = {"grid": "tf_causalnl.experiments.grid", "moons": "tf_causalnl.experiments.moons",
                     "tune": "tf_causalnl.experiments.tuning"}


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
    "model.warmup_epochs": 0,
    "model.rampup_epochs": 0,
    "estimate.epochs": 1,
    "estimate.members": 1,
    "train.epochs": 1,
    "train.batch_size": 1,
    "train.eval_batch_size": 1,
}


#: Number keys that must be above zero.
_POSITIVE = ("model.temperature", "model.mixup_alpha", "train.learning_rate")
#: Keys of `_AT_LEAST` that may be None.
_OPTIONAL = ("model.vae_depth", "model.warmup_epochs", "model.rampup_epochs", "estimate.members")
#: The objective's weights: numbers of at least 0, or None (the objective's own).
_BETAS = ("model.beta0", "model.beta1", "model.beta2", "model.beta3")


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
    check_choice("strategy", "train.strategy", config.train.strategy, registry.STRATEGIES)
    if lookup(config, "train.precision") is not None:  # None: float32
        check_choice("precision", "train.precision", config.train.precision, networks.PRECISIONS)
    check_choice("method", "model.method", config.model.method, registry.METHODS)
    check_choice("dataset", "data.name", config.data.name, {*data.LOADERS, *registry.FILE_DATASETS})
    check_choice("classifier", "model.classifier", config.model.classifier, networks.CLASSIFIERS)
    check_choice("noise type", "noise.type", config.noise.type, {*noise.NOISE_TYPES, registry.REAL_NOISE})
    for what, key, valid in (("objective", "model.objective", losses.OBJECTIVES),
                             ("reconstruction error", "model.reconstruction_error", losses.ERRORS),
                             ("pixel reduction", "model.reconstruction_pixels", losses.PIXEL_REDUCTIONS),
                             ("selection", "model.selection", selection.SELECTIONS)):
        if lookup(config, key) is not None:  # None: the objective's own
            check_choice(what, key, lookup(config, key), valid)
    check_choice("generative pull", "model.pull", config.model.pull, causalnl.PULLS)
    if config.noise.type == registry.REAL_NOISE and config.data.name not in registry.FILE_DATASETS:
        raise ValueError(
            f'noise.type="{registry.REAL_NOISE}" trains on a dataset\'s own noisy labels, but the '
            f"labels of {config.data.name} are clean: choose a synthetic noise type "
            f"({', '.join(sorted(noise.NOISE_TYPES))}) or a dataset with real noise "
            f"({', '.join(sorted(registry.FILE_DATASETS))}).")
    if config.model.method in ("dividemix", "instancegm") and config.data.name in registry.FILE_DATASETS:
        raise ValueError(
            f"model.method={config.model.method!r} splits the training set before each epoch, which needs it "
            f"in memory, but {config.data.name} is read from its files; choose another method for it.")
    if config.model.method in ("dividemix", "instancegm") and config.train.strategy == distribute.MULTI_WORKER:
        raise ValueError(
            f"model.method={config.model.method!r} splits the training set before each epoch inside Keras' fit, "
            f'which train.strategy="{distribute.MULTI_WORKER}" replaces with its own loop; use '
            f'train.strategy="{distribute.MIRRORED}" (one machine) or another method.')


def _check_ranges(config: ml_collections.ConfigDict) -> None:
    """The ranges of `check_config`."""
    noise.check_rate(config.noise.rate, "noise.rate")
    noise.check_std(config.noise.std, "noise.std")
    forget_rate.check_forget_rate(config.model.forget_rate, "model.forget_rate")
    for key, minimum in _AT_LEAST.items():
        optional = key in _OPTIONAL  # None: chosen from the image size, or the model's default
        validation.check_whole(lookup(config, key), key, minimum, optional=optional,
                               hint=f"set it with --config.{key}=N (the default is "
                                    f"{lookup(config_lib.base_config(), key)})")
    for key in _POSITIVE:
        validation.check_number(lookup(config, key), key, above=0.0)
    for key in _BETAS:  # None: the objective's own
        validation.check_number(lookup(config, key), key, at_least=0.0, optional=True,
                                hint="a beta weighs a term of the objective; 0 turns it off")
    validation.check_number(lookup(config, "model.label_gradient"), "model.label_gradient", at_least=0.0,
                            at_most=1.0, optional=True, hint="None keeps the objective's (1)")
    for key, limits in (("p_threshold", dict(above=0.0, at_most=1.0)), ("sharpen_temperature", dict(above=0.0)),
                        ("mixmatch_alpha", dict(above=0.0)), ("lambda_u", dict(at_least=0.0))):
        validation.check_number(config.model.get(key), f"model.{key}", optional=True, **limits)


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
    old, new = _without_none(to_plain(old)), _without_none(to_plain(new))
    return [key for key in _differences(old, new)
            if not any(key == skip or key.startswith(skip + ".") for skip in ignore)]


def upgrade_stored_config(stored: dict) -> dict:
    """A config stored by an earlier version, with the values it ran with where a default changed since.

    `model.pull` is the one so far: CausalNL pulled on every example ("all")
    until "noise" became the default, so a stored config of a CausalNL run
    (or of a grid or search with CausalNL in it) that leaves it out or unset
    reads as "all". Other methods ignore the key: for them it reads as today's
    default, so that their runs resume and their grids compare equal.

    Returns:
      `stored`, changed in place.
    """
    model = stored.get("model")
    if not isinstance(model, dict) or model.get("pull") is not None:
        return stored
    grid = stored.get("grid")
    # A grid's cells set model.method from grid.methods; a run's (or search's) is its own.
    methods = list(grid.get("methods") or ()) if isinstance(grid, dict) else [model.get("method")]
    uses_pull = "causalnl" in methods
    model["pull"] = causalnl.LEGACY_PULL if uses_pull else causalnl.DEFAULT_PULL
    return stored


def _reference_config() -> ml_collections.ConfigDict:
    """`base_config()` with an example of each optional section."""
    reference = config_lib.base_config()
    reference.grid = config_lib.table_1_grid(seeds=())
    reference.grid.cases = ()  # instead of noise_types x noise_rates (experiments.grid_cells)
    reference.moons = config_lib.moons_config().moons
    reference.tune = config_lib.tune_section()
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


def lookup(config, key: str):
    """The value at a dotted key of a config or dict; None when absent."""
    node = config
    for part in key.split("."):
        if not hasattr(node, "keys") or part not in node.keys():
            return None
        node = node[part]
    return node


def to_plain(config) -> dict:
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
