"""Hyper-parameter search for CausalNL with keras-tuner, on noisy labels alone.

`tune(config, workdir)` is what `scripts/tune.py` runs (docs/TUNING.md). A
config holds a training config plus a `tune` section (`tune_section()` lists
every key with its default). The search:

  1. loads the data and draws the noise as `training.train` does
     (`training.load_noisy_data`), then holds out a seeded noisy validation
     split of the training set (`noisy_validation_split`, which sees the
     noisy labels only);
  2. trains one model per trial with `CausalNLHyperModel`: `build(hp)` sets
     the searched config values (β0-β3, z_dim, the learning rate, the final
     forget rate or "auto") from `hp` and builds through `training.build_model`;
  3. maximises `val_noisy_accuracy`, the accuracy against the noisy labels
     of the held-out split at the last epoch. In expectation it is an
     increasing function of the clean accuracy under symmetric noise below
     (C-1)/C, and close to one under other diagonally dominant noise
     (docs/TUNING.md). `clean_test_accuracy` on the clean test set is
     logged beside it, never used by the search, so that one can see how well
     the noisy objective tracks the clean one.

The work directory gets:

  tune_config.json  the config of the search (a rerun with another is refused)
  search/           keras-tuner's oracle and trials (a rerun resumes from them)
  trials.csv        one row per trial: id, status, hyper-parameters,
                    val_noisy_accuracy, clean_test_accuracy, seconds
  best_config.py    the training config with the best trial's values, which
                    `scripts/train.py --config` accepts unchanged
  noise_estimate.json  the anchor-point estimate, when "auto" is a choice

Distributed search is keras-tuner's: a chief (`KERASTUNER_TUNER_ID=chief`)
serves the oracle at `KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT`, workers
(any other id) run trials; the chief writes the files above at the end.
"""

import copy
import dataclasses
import os
import time

import keras
import keras_tuner
import ml_collections
import numpy as np

from tf_causalnl import callbacks as tf_callbacks
from tf_causalnl import checkpoints, checks, data, training, transition

#: The objective: accuracy against the noisy labels of the held-out split.
OBJECTIVE = "val_noisy_accuracy"
#: Clean test accuracy, logged beside the objective, never optimised.
CLEAN = "clean_test_accuracy"
#: Searchable names and the config keys they set.
SPACE_KEYS = {"beta0": "model.beta0", "beta1": "model.beta1", "beta2": "model.beta2",
              "beta3": "model.beta3", "z_dim": "model.z_dim",
              "learning_rate": "train.learning_rate", "forget_rate": "model.forget_rate"}
#: Keys of the search config a rerun may change (see `check_workdir`).
RESUMABLE_KEYS = ("tune.max_trials", "train.verbose")
_SEARCH_DIR = "search"


def tune_section() -> ml_collections.ConfigDict:
    """The `tune` section with every key and its default.

    Keys:
      algorithm: "random", "bayesian" or "hyperband" (`TUNERS`).
      max_trials: the trial budget (`--max_trials` overrides it); for
        Hyperband too, where it caps the trials of its brackets.
      validation_fraction: share of the training set held out, with its
        noisy labels, for the objective.
      clean_test: also log the clean test accuracy of each trial.
      hyperband_factor: Hyperband's reduction factor; its `max_epochs` is
        `train.epochs`.
      space: what is searched. beta0-3, z_dim and learning_rate are
        (low, high) ranges sampled on a log scale (z_dim as an integer);
        forget_rate is a tuple of choices, numbers or "auto". None keeps the
        config's value (not searched).
    """
    tune = ml_collections.ConfigDict()
    tune.algorithm = "bayesian"
    tune.max_trials = 10
    tune.validation_fraction = 0.2
    tune.clean_test = True
    tune.hyperband_factor = 3
    tune.space = ml_collections.ConfigDict()
    # Log ranges a decade either side of the default objective's betas
    # (losses.ELBO_BETAS: 0.1, 6.4, 6.4e-4, 0.64).
    tune.space.beta0 = config_range(0.01, 1.0)
    tune.space.beta1 = config_range(0.64, 64.0)
    tune.space.beta2 = config_range(6.4e-5, 6.4e-3)
    tune.space.beta3 = config_range(0.064, 6.4)
    tune.space.z_dim = config_range(1, 128)
    tune.space.learning_rate = config_range(1e-4, 1e-2)
    tune.space.forget_rate = ml_collections.FieldReference((0.3, 0.45, 0.6, transition.AUTO),
                                                           field_type=object)
    return tune


def config_range(low, high) -> ml_collections.FieldReference:
    """A space entry that may also be set to None (not searched)."""
    return ml_collections.FieldReference((low, high), field_type=object)


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
        raise ValueError("The config has no tune section; start from tf_causalnl.tuning.tune_section().")
    reference = tune_section()
    for section, ref, path in ((config.tune, reference, "tune"),
                               (config.tune.get("space", {}), reference.space, "tune.space")):
        unknown = sorted(set(section.keys()) - set(ref.keys()))
        if unknown:
            raise ValueError(f"Unknown config key {path}.{unknown[0]}; the valid keys of config.{path} "
                             f"are: {', '.join(sorted(ref.keys()))}.")
    tune = config.tune
    checks.check_choice("tuning algorithm", "tune.algorithm", tune.get("algorithm"), TUNERS)
    fraction = tune.get("validation_fraction")
    if not (isinstance(fraction, float) and 0.0 < fraction < 1.0):
        raise ValueError(f"tune.validation_fraction must be a number in (0, 1), got {fraction!r}.")
    for key, bounds in space_of(config).items():
        if key == "forget_rate":
            for choice in bounds:
                transition.check_forget_rate(choice, "tune.space.forget_rate")
            continue
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                and all(isinstance(b, (int, float)) and b > 0 for b in bounds) and bounds[0] <= bounds[1]):
            raise ValueError(f"tune.space.{key} must be (low, high) with 0 < low <= high (a log "
                             f"range), or None to keep model/train's value; got {bounds!r}.")
        if key == "z_dim" and not all(isinstance(b, int) for b in bounds):
            raise ValueError(f"tune.space.z_dim must be whole numbers, got {bounds!r}.")
    checks.check_config(training_config(config))


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


@dataclasses.dataclass
class TuningData:
    """What every trial trains and scores on.

    Attributes:
      x_train, noisy_train: The training part and its noisy labels.
      x_val, noisy_val: The held-out part and its noisy labels (the objective).
      x_test, y_test: The clean test set, or None (not reported).
      input_shape, num_classes: Of the dataset.
      estimate: The anchor-point noise estimate (for forget_rate="auto"), or None.
    """

    x_train: np.ndarray
    noisy_train: np.ndarray
    x_val: np.ndarray
    noisy_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    input_shape: tuple
    num_classes: int
    estimate: transition.NoiseEstimate | None = None


def load_tuning_data(config: ml_collections.ConfigDict, workdir: str) -> TuningData:
    """Loads the data and noise of the search, splits off the noisy validation set.

    When "auto" is a forget-rate choice (or the config's value), the noise is
    estimated once from the training part's noisy labels, cached in `workdir`.
    """
    train_config = training_config(config)
    if train_config.data.name in training.FILE_DATASETS:
        raise ValueError(f"Tuning needs a dataset held in memory; {train_config.data.name} is read from "
                         f"files. Choose one of {sorted(data.LOADERS)}.")
    dataset, noisy, _ = training.load_noisy_data(train_config)
    train_idx, val_idx = noisy_validation_split(noisy, config.tune.validation_fraction, config.seed)
    checks.check_batch_size(train_config.train.batch_size, len(train_idx))
    estimate = None
    choices = space_of(config).get("forget_rate", ())
    if transition.AUTO in choices or train_config.model.forget_rate == transition.AUTO:
        train_config.estimate.cache_dir = ""  # keyed on the whole set elsewhere: keep it here
        part = dataclasses.replace(dataset, x_train=dataset.x_train[train_idx], y_train=noisy[train_idx])
        estimate = training.estimate_noise(train_config, part, noisy[train_idx], workdir)
    clean = config.tune.clean_test
    return TuningData(dataset.x_train[train_idx], noisy[train_idx], dataset.x_train[val_idx], noisy[val_idx],
                      dataset.x_test if clean else None, dataset.y_test if clean else None,
                      dataset.input_shape, dataset.num_classes, estimate)


def accuracy(model: keras.Model, x: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    """Share of `labels` that the model's argmax prediction matches."""
    predicted = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(predicted == labels))


class NoisyValidation(keras.callbacks.Callback):
    """Adds `val_noisy_accuracy` (and `clean_test_accuracy`) to each epoch's logs.

    Args:
      x_val, noisy_val: The held-out inputs and their noisy labels.
      x_test, y_test: Clean test inputs and labels, or None.
      batch_size: Prediction batch size.
    """

    def __init__(self, x_val, noisy_val, x_test=None, y_test=None, batch_size: int = 1000):
        super().__init__()
        self.val, self.test, self.batch_size = (x_val, noisy_val), (x_test, y_test), batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs[OBJECTIVE] = accuracy(self.model, *self.val, self.batch_size)
        if self.test[0] is not None:
            logs[CLEAN] = accuracy(self.model, *self.test, self.batch_size)


def trial_config(config: ml_collections.ConfigDict, values: dict) -> ml_collections.ConfigDict:
    """The training config with a trial's hyper-parameter values set (no `tune` section)."""
    trained = training_config(config)
    for name, value in values.items():
        if name not in SPACE_KEYS:
            continue  # keras-tuner's own entries, e.g. Hyperband's tuner/epochs
        section, key = SPACE_KEYS[name].split(".")
        if name == "forget_rate" and value != transition.AUTO:
            value = float(value)
        trained[section][key] = value
    return trained


class CausalNLHyperModel(keras_tuner.HyperModel):
    """Builds and trains the configured model with a trial's hyper-parameters.

    Args:
      config: The search config (training keys and a `tune` section).
      tuning_data: The data every trial sees (`load_tuning_data`).
    """

    def __init__(self, config: ml_collections.ConfigDict, tuning_data: TuningData, **kwargs):
        super().__init__(**kwargs)
        self.config, self.data = config, tuning_data

    def declare(self, hp: keras_tuner.HyperParameters) -> dict:
        """Declares the space of `config.tune.space` in `hp`; returns the values."""
        values = {}
        for name, bounds in space_of(self.config).items():
            if name == "forget_rate":  # one type per Choice: numbers as strings beside "auto"
                values[name] = hp.Choice(name, [str(choice) for choice in bounds])
            elif name == "z_dim":
                values[name] = hp.Int(name, bounds[0], bounds[1], sampling="log")
            else:
                values[name] = hp.Float(name, bounds[0], bounds[1], sampling="log")
        return values

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        config = trial_config(self.config, self.declare(hp))
        keras.utils.set_random_seed(config.seed)  # every trial starts from the same seed
        # compile (in build_model) builds the optimizer, so that a trial Hyperband
        # continues loads Adam's state (and step) with the weights.
        return training.build_model(config, self.data.input_shape, self.data.num_classes, self.data.estimate)

    def fit(self, hp, model, *args, epochs=None, initial_epoch=0, callbacks=(), verbose=None, **kwargs):
        """Trains on the training part; returns the last epoch's objective (and clean accuracy)."""
        del args, kwargs  # everything comes from the config and `tuning_data`
        config, d = self.config, self.data
        start = time.perf_counter()
        train = data.train_dataset(
            d.x_train, d.noisy_train, batch_size=config.train.batch_size, seed=config.seed,
            augment=config.data.augment, crop_padding=config.data.crop_padding, flip=config.data.flip,
            initial_epoch=initial_epoch)
        logger = NoisyValidation(d.x_val, d.noisy_val, d.x_test, d.y_test, config.train.eval_batch_size)
        # The logger first, so that keras-tuner's callbacks see the objective.
        history = model.fit(
            train, steps_per_epoch=data.steps_per_epoch(len(d.noisy_train), config.train.batch_size),
            epochs=epochs or config.train.epochs, initial_epoch=initial_epoch, shuffle=False,
            callbacks=[logger, tf_callbacks.TerminateOnNonFinite(), *callbacks],
            verbose=config.train.verbose if verbose is None else verbose)
        results = {name: float(values[-1]) for name, values in history.history.items()
                   if name in (OBJECTIVE, CLEAN)}
        results["seconds"] = round(time.perf_counter() - start, 1)
        return results


class _Reporting:
    """Prints one line per finished trial and, where the oracle lives here, rewrites trials.csv."""

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        print(summary_line(self.oracle.get_trial(trial.trial_id)), flush=True)
        if not is_distributed():
            write_outputs(self, self.hypermodel.config)


class RandomSearch(_Reporting, keras_tuner.RandomSearch):
    """keras-tuner's random search, reporting each trial."""


class BayesianOptimization(_Reporting, keras_tuner.BayesianOptimization):
    """keras-tuner's Gaussian-process Bayesian optimisation, reporting each trial."""


class Hyperband(_Reporting, keras_tuner.Hyperband):
    """keras-tuner's Hyperband, reporting each trial."""


#: `tune.algorithm` -> tuner class.
TUNERS = {"random": RandomSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


def make_tuner(config: ml_collections.ConfigDict, hypermodel: keras_tuner.HyperModel, workdir: str,
               max_trials: int | None = None) -> keras_tuner.Tuner:
    """The tuner of `config.tune.algorithm`, keeping its state in `<workdir>/search`.

    An existing search there is reloaded (keras-tuner's `overwrite=False`),
    so a rerun resumes it; `max_trials` (default `config.tune.max_trials`) is
    the total budget, trials already run included.
    """
    tune = config.tune
    max_trials = max_trials or tune.max_trials
    common = dict(hypermodel=hypermodel, objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
                  directory=workdir, project_name=_SEARCH_DIR, overwrite=False,
                  seed=config.seed + 1)  # keras-tuner draws a random seed for 0
    if tune.algorithm == "hyperband":
        tuner = Hyperband(max_epochs=config.train.epochs, factor=tune.hyperband_factor, **common)
        if is_chief():  # a worker's oracle is a client of the chief's
            tuner.oracle.max_trials = max_trials
    else:
        tuner = TUNERS[tune.algorithm](max_trials=max_trials, **common)
    return tuner


def is_distributed() -> bool:
    """Whether this process is one tuner of keras-tuner's distributed search."""
    return "KERASTUNER_ORACLE_IP" in os.environ  # as keras-tuner decides


def is_chief() -> bool:
    """Whether this process holds the oracle (not distributed, or the chief)."""
    return not is_distributed() or "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")


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
    differences = checks.config_differences(stored, config, ignore=RESUMABLE_KEYS)
    if differences:
        raise ValueError(
            f"{workdir} holds a search of a different config (it differs in "
            f"{', '.join(differences[:8])}). A rerun resumes that search, so it may only change "
            f"{' or '.join(RESUMABLE_KEYS)} (--max_trials). Tune into another work directory, or "
            f"rerun with the config in {path}.")


def trial_rows(tuner: keras_tuner.Tuner) -> list[dict]:
    """One dict per trial of the tuner's oracle, in trial order, for trials.csv."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        row = {"trial_id": trial_id, "status": trial.status}
        row.update(_ordered(trial.hyperparameters.values))
        for name in (OBJECTIVE, CLEAN, "seconds"):
            row[name] = trial.metrics.get_last_value(name) if trial.metrics.exists(name) else ""
        rows.append(row)
    return rows


def summary_line(trial) -> str:
    """`trial 03 | beta0=0.05 ... | val_noisy_accuracy 0.6120 | clean_test_accuracy 0.7410 | 61.2 s`."""
    values = " ".join(f"{name}={_short(value)}"
                      for name, value in _ordered(trial.hyperparameters.values).items())
    parts = [f"trial {trial.trial_id} ({trial.status})"] + ([values] if values else [])
    for name in (OBJECTIVE, CLEAN):
        if trial.metrics.exists(name):
            parts.append(f"{name} {trial.metrics.get_last_value(name):.4f}")
    if trial.metrics.exists("seconds"):
        parts.append(f"{trial.metrics.get_last_value('seconds'):.1f} s")
    return " | ".join(parts)


def _ordered(values: dict) -> dict:
    """Hyper-parameter values in `SPACE_KEYS` order, keras-tuner's own (e.g. tuner/epochs) after."""
    order = {name: i for i, name in enumerate(SPACE_KEYS)}
    return dict(sorted(values.items(), key=lambda item: order.get(item[0], len(order))))


def _short(value):
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def correlations(rows: list[dict]) -> dict:
    """Pearson and Spearman correlation of the objective and clean test accuracy over finished trials.

    Args:
      rows: `trial_rows`, or the rows of trials.csv (`csv.DictReader`); empty values are skipped.

    Returns:
      {"trials", "pearson", "spearman"}, or {} for fewer than 3 trials or a constant column.
    """
    pairs = np.array([(r[OBJECTIVE], r[CLEAN]) for r in rows
                      if r.get(OBJECTIVE, "") != "" and r.get(CLEAN, "") != ""], float)
    if len(pairs) < 3 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return {}

    def ranks(values):  # average ranks of ties
        order = values.argsort()
        ranked = np.empty(len(values))
        ranked[order] = np.arange(len(values))
        for value in np.unique(values):
            ranked[values == value] = ranked[values == value].mean()
        return ranked
    return {"trials": len(pairs), "pearson": float(np.corrcoef(pairs.T)[0, 1]),
            "spearman": float(np.corrcoef(ranks(pairs[:, 0]), ranks(pairs[:, 1]))[0, 1])}


def write_outputs(tuner: keras_tuner.Tuner, config: ml_collections.ConfigDict) -> dict:
    """Writes trials.csv and best_config.py into the tuner's work directory (atomically)."""
    workdir = tuner.directory
    rows = trial_rows(tuner)
    names = list(dict.fromkeys(name for row in rows for name in row)) or ["trial_id"]
    for ending in (OBJECTIVE, CLEAN, "seconds"):  # the results last
        if ending in names:
            names.append(names.pop(names.index(ending)))
    lines = [",".join(names)] + [",".join(str(row.get(name, "")) for name in names) for row in rows]
    checkpoints.write_bytes(os.path.join(workdir, "trials.csv"), ("\n".join(lines) + "\n").encode())
    summary = {"trials_csv": os.path.join(workdir, "trials.csv"), "trials": len(rows), **correlations(rows)}
    best = tuner.oracle.get_best_trials(1)
    if best:
        trial = best[0]
        path = os.path.join(workdir, "best_config.py")
        checkpoints.write_bytes(path, best_config_source(
            trial_config(config, trial.hyperparameters.values), trial, workdir).encode())
        summary.update(best_trial=trial.trial_id, best_config=path, best_values=trial.hyperparameters.values,
                       **{name: trial.metrics.get_last_value(name) for name in (OBJECTIVE, CLEAN)
                          if trial.metrics.exists(name)})
    return summary


def best_config_source(config: ml_collections.ConfigDict, trial, workdir: str) -> str:
    """A configs/*.py file whose `get_config()` returns `config`, set key by key over `base_config()`."""
    from tf_causalnl.config import base_config  # noqa: PLC0415

    values = config.to_dict()
    lines = []
    for key in checks.config_differences(base_config(), config):
        value = values
        for part in key.split("."):
            value = value[part]
        lines.append(f"    config.{key} = {value!r}")
    score = trial.metrics.get_last_value(OBJECTIVE) if trial.metrics.exists(OBJECTIVE) else float("nan")
    return (
        f'"""The best hyper-parameters of the search in {workdir}: trial {trial.trial_id}, '
        f"{OBJECTIVE} {score:.4f}.\n\nWritten by tf_causalnl.tuning; train it with\n\n"
        f"    python scripts/train.py --config {os.path.join(workdir, 'best_config.py')} \\\n"
        f"        --workdir runs/best\n\"\"\"\n\n"
        "from tf_causalnl.config import base_config\n\n\n"
        "def get_config():\n    config = base_config()\n" + "\n".join(lines) + "\n    return config\n")


def tune(config: ml_collections.ConfigDict, workdir: str, max_trials: int | None = None) -> dict:
    """Runs (or resumes) the search of `config` in `workdir`.

    Args:
      config: A training config with a `tune` section.
      workdir: Where the search lives; rerunning on it resumes.
      max_trials: The total trial budget (default `config.tune.max_trials`).

    Returns:
      On the chief (or a single process): the summary `write_outputs` gives
      (best trial, its values and accuracies, file paths, correlations);
      on a worker, {}.

    Raises:
      ValueError: a bad config, or a work directory holding another search.
    """
    check_tune_config(config)
    check_workdir(config, workdir)
    tuning_data = load_tuning_data(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    if is_chief():
        checkpoints.write_json(os.path.join(workdir, "tune_config.json"), config.to_dict())
    tuner = make_tuner(config, CausalNLHyperModel(config, tuning_data), workdir, max_trials)
    tuner.search(verbose=0)
    return write_outputs(tuner, config) if is_chief() else {}
