"""A search's config: its `tune` section checked, the space read, each trial's training config."""

import copy
import os

import ml_collections
import numpy as np

from tf_causalnl.config import tune_section
from tf_causalnl.models import forget_rate
from tf_causalnl.training import checks, config_checks


#: The objective: accuracy against the noisy labels of the held-out split.
OBJECTIVE = "val_noisy_accuracy"
#: Clean test accuracy, logged beside the objective, never optimised.
CLEAN = "clean_test_accuracy"

#: keras-tuner's search algorithms by name (`tuning.TUNERS` maps them to tuners).
ALGORITHMS = ("random", "bayesian", "hyperband")
#: Searchable names and the config keys they set.
SPACE_KEYS = {"beta0": "model.beta0", "beta1": "model.beta1", "beta2": "model.beta2",
              "beta3": "model.beta3", "z_dim": "model.z_dim",
              "learning_rate": "train.learning_rate", "forget_rate": "model.forget_rate"}


#: Keys of the search config a rerun may change (see `check_workdir`).
RESUMABLE_KEYS = ("tune.max_trials", "train.verbose")


def training_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config without its `tune` section: what `training.train` accepts."""
    plain = copy.deepcopy(config)  # keeps forget_rate's field type (a number or "auto")
    if "tune" in plain:
        with plain.unlocked():
            del plain["tune"]
    return plain


def check_tune_config(config: ml_collections.ConfigDict) -> None:
    """Refuses a search config with bad `tune` keys or values, or a bad training part.

    Raises:
      ValueError: the first problem, naming the valid keys or values.
    """
    if "tune" not in config:
        raise ValueError("The config has no tune section; start from tf_causalnl.config.tune_section().")
    reference = tune_section()
    for section, ref, path in ((config.tune, reference, "tune"),
                               (config.tune.get("space", {}), reference.space, "tune.space")):
        unknown = sorted(set(section.keys()) - set(ref.keys()))
        if unknown:
            raise ValueError(f"Unknown config key {path}.{unknown[0]}; the valid keys of config.{path} "
                             f"are: {', '.join(sorted(ref.keys()))}.")
    tune = config.tune
    config_checks.check_choice("tuning algorithm", "tune.algorithm", tune.get("algorithm"), ALGORITHMS)
    fraction = tune.get("validation_fraction")
    if not (isinstance(fraction, float) and 0.0 < fraction < 1.0):
        raise ValueError(f"tune.validation_fraction must be a number in (0, 1), got {fraction!r}.")
    for key, bounds in space_of(config).items():
        if key == "forget_rate":
            for choice in bounds:
                forget_rate.check_forget_rate(choice, "tune.space.forget_rate")
            continue
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                and all(isinstance(b, (int, float)) and b > 0 for b in bounds) and bounds[0] <= bounds[1]):
            raise ValueError(f"tune.space.{key} must be (low, high) with 0 < low <= high (a log "
                             f"range), or None to keep model/train's value; got {bounds!r}.")
        if key == "z_dim" and not all(isinstance(b, int) for b in bounds):
            raise ValueError(f"tune.space.z_dim must be whole numbers, got {bounds!r}.")
    config_checks.check_config(training_config(config))


def space_of(config: ml_collections.ConfigDict) -> dict:
    """The searched entries of `config.tune.space` (the None ones left out), in `SPACE_KEYS` order."""
    space = config.tune.get("space", {})
    return {key: space[key] for key in SPACE_KEYS if space.get(key) is not None}


def noisy_validation_split(noisy_labels: np.ndarray, fraction: float,
                           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) indices of the noisy training set.

    Only the noisy labels are given, so the split cannot depend on clean ones.

    Returns:
      Sorted index arrays; the validation part has round(fraction * n) examples (at least 1).
    """
    n = len(noisy_labels)
    order = np.random.default_rng([seed, 6]).permutation(n)
    size = min(max(1, round(fraction * n)), n - 1)
    return np.sort(order[size:]), np.sort(order[:size])


def trial_config(config: ml_collections.ConfigDict, values: dict) -> ml_collections.ConfigDict:
    """The training config with a trial's hyper-parameter values set (no `tune` section)."""
    trained = training_config(config)
    for name, value in values.items():
        if name not in SPACE_KEYS:
            continue  # keras-tuner's own entries, e.g. Hyperband's tuner/epochs
        section, key = SPACE_KEYS[name].split(".")
        if name == "forget_rate" and value != forget_rate.AUTO:
            value = float(value)
        trained[section][key] = value
    return trained


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses a work directory holding a search of another config.

    A rerun may change only `RESUMABLE_KEYS` (e.g. a larger `tune.max_trials`).

    Raises:
      ValueError: naming the keys that differ.
    """
    path = os.path.join(workdir, "tune_config.json")
    stored = checks.read_stored_config(path)
    if stored is None:
        return
    differences = config_checks.config_differences(stored, config, ignore=RESUMABLE_KEYS)
    if differences:
        raise ValueError(
            f"{workdir} holds a search of a different config (it differs in "
            f"{', '.join(differences[:8])}). A rerun resumes that search, so it may only change "
            f"{' or '.join(RESUMABLE_KEYS)} (--max_trials). Tune into another work directory, or "
            f"rerun with the config in {path}.")
