"""A search's report: the trials as rows, their correlations, the best config as a file."""

import os

import keras_tuner
import ml_collections
import numpy as np

from tf_causalnl import checkpoints
from tf_causalnl.config import base_config
from tf_causalnl.experiments.tuning_config import CLEAN, OBJECTIVE, SPACE_KEYS, trial_config
from tf_causalnl.training import config_checks


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
    checkpoints.write_csv(os.path.join(workdir, "trials.csv"), rows, names)
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
    values = config.to_dict()
    lines = []
    for key in config_checks.config_differences(base_config(), config):
        value = values
        for part in key.split("."):
            value = value[part]
        lines.append(f"    config.{key} = {value!r}")
    score = trial.metrics.get_last_value(OBJECTIVE) if trial.metrics.exists(OBJECTIVE) else float("nan")
    return (
        f'"""The best hyper-parameters of the search in {workdir}: trial {trial.trial_id}, '
        f"{OBJECTIVE} {score:.4f}.\n\nWritten by tf_causalnl.experiments.tuning; train it with\n\n"
        f"    python scripts/train.py --config {os.path.join(workdir, 'best_config.py')} \\\n"
        f"        --workdir runs/best\n\"\"\"\n\n"
        "from tf_causalnl.config import base_config\n\n\n"
        "def get_config():\n    config = base_config()\n" + "\n".join(lines) + "\n    return config\n")
