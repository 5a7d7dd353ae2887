"""keras-tuner's search of CausalNL's betas, z_dim, learning and forget rate, on noisy labels only."""

import dataclasses
import os
import time

import keras
import keras_tuner
import ml_collections
import numpy as np

from tf_causalnl import checkpoints, data
from tf_causalnl.experiments.tuning_config import (ALGORITHMS, CLEAN, OBJECTIVE, check_tune_config, check_workdir,
                                                   noisy_validation_split, space_of, training_config, trial_config)
from tf_causalnl.experiments.tuning_report import summary_line, write_outputs
from tf_causalnl.models import callbacks as tf_callbacks
from tf_causalnl.models import forget_rate
from tf_causalnl.noise import estimation
from tf_causalnl.training import checks, inputs, registry
from tf_causalnl.training import estimate as run_estimate


_SEARCH_DIR = "search"


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
    estimate: estimation.NoiseEstimate | None = None


def load_tuning_data(config: ml_collections.ConfigDict, workdir: str) -> TuningData:
    """Loads the data and noise of the search, splits off the noisy validation set.

    When "auto" is a forget-rate choice (or the config's value), the noise is
    estimated once from the training part's noisy labels, cached in `workdir`.
    """
    train_config = training_config(config)
    if train_config.data.name in registry.FILE_DATASETS:
        raise ValueError(f"Tuning needs a dataset held in memory; {train_config.data.name} is read from "
                         f"files. Choose one of {sorted(data.LOADERS)}.")
    dataset, noisy, _ = inputs.load_noisy_data(train_config)
    train_idx, val_idx = noisy_validation_split(noisy, config.tune.validation_fraction, config.seed)
    checks.check_batch_size(train_config.train.batch_size, len(train_idx))
    noise_estimate = None
    choices = space_of(config).get("forget_rate", ())
    if forget_rate.AUTO in choices or train_config.model.forget_rate == forget_rate.AUTO:
        train_config.estimate.cache_dir = ""  # keyed on the whole set elsewhere: keep it here
        part = dataclasses.replace(dataset, x_train=dataset.x_train[train_idx], y_train=noisy[train_idx])
        noise_estimate = run_estimate.estimate_noise(train_config, part, noisy[train_idx], workdir)
    clean = config.tune.clean_test
    return TuningData(dataset.x_train[train_idx], noisy[train_idx], dataset.x_train[val_idx], noisy[val_idx],
                      dataset.x_test if clean else None, dataset.y_test if clean else None,
                      dataset.input_shape, dataset.num_classes, noise_estimate)


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
        return registry.build_model(config, self.data.input_shape, self.data.num_classes, self.data.estimate)

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
TUNERS = dict(zip(ALGORITHMS, (RandomSearch, BayesianOptimization, Hyperband)))


def make_tuner(config: ml_collections.ConfigDict, hypermodel: keras_tuner.HyperModel, workdir: str,
               max_trials: int | None = None) -> keras_tuner.Tuner:
    """The tuner of `config.tune.algorithm`, keeping its state in `<workdir>/search`.

    An existing search there is reloaded (keras-tuner's `overwrite=False`),
    so a rerun resumes it; `max_trials` (default `config.tune.max_trials`) is
    the total budget, trials already run included.
    """
    section = config.tune
    max_trials = max_trials or section.max_trials
    common = dict(hypermodel=hypermodel, objective=keras_tuner.Objective(OBJECTIVE, direction="max"),
                  directory=workdir, project_name=_SEARCH_DIR, overwrite=False,
                  seed=config.seed + 1)  # keras-tuner draws a random seed for 0
    if section.algorithm == "hyperband":
        tuner = Hyperband(max_epochs=config.train.epochs, factor=section.hyperband_factor, **common)
        if is_chief():  # a worker's oracle is a client of the chief's
            tuner.oracle.max_trials = max_trials
    else:
        tuner = TUNERS[section.algorithm](max_trials=max_trials, **common)
    return tuner


def is_distributed() -> bool:
    """Whether this process is one tuner of keras-tuner's distributed search."""
    return "KERASTUNER_ORACLE_IP" in os.environ  # as keras-tuner decides


def is_chief() -> bool:
    """Whether this process holds the oracle (not distributed, or the chief)."""
    return not is_distributed() or "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")


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
