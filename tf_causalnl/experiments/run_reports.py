"""A finished run's reports from its work directory: its pictures and its label issues.

The run's model and data are rebuilt from the config it stored, so a work
directory is all a report needs.
"""

import json
import logging
import os

import ml_collections
import numpy as np

from tf_causalnl import checkpoints, data
from tf_causalnl.reports.run_pictures import read_json, dataset_class_names, write_pictures
from tf_causalnl.training import inputs, registry, run


_log = logging.getLogger(__name__)


def run_data(config: ml_collections.ConfigDict) -> tuple[data.Dataset, np.ndarray]:
    """The run's dataset and noisy training labels, rebuilt from its config.

    The one place this module depends on how training loads data.
    """

    dataset, noisy, _ = inputs.load_noisy_data(config)
    return dataset, noisy


def require_workdir(workdir: str) -> dict:
    """The run's config, or a clear error saying what is missing and how to make it."""
    make = f"Make one with `{checkpoints.TRAIN_COMMAND.format(workdir)}`."
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"There is no work directory {workdir}. {make}")
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{workdir} has no config.json, so it is not a training work "
                                f"directory. {make}")
    try:
        return read_json(config_path)
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path} is not valid JSON ({error}); retrain into a new work "
                         f"directory with `{checkpoints.TRAIN_COMMAND.format('<new workdir>')}`.") from error


def _saved_noisy_labels(workdir: str, rebuilt: np.ndarray) -> np.ndarray | None:
    """The rebuilt noisy labels if they match noisy_labels.npy; else None, saying so."""
    path = os.path.join(workdir, "noisy_labels.npy")
    if not os.path.exists(path):
        _log.warning("%s is missing; the noisy labels rebuilt from config.json are used.", path)
        return rebuilt
    saved = np.load(path)
    if saved.shape == rebuilt.shape and np.array_equal(saved, rebuilt):
        return rebuilt
    differ = (f"{int(np.sum(saved != rebuilt))} of {len(saved)} labels differ"
              if saved.shape == rebuilt.shape else f"{len(saved)} saved, {len(rebuilt)} rebuilt")
    _log.warning(
        "The noisy labels rebuilt from %s/config.json do not match the run's noisy_labels.npy "
        "(%s): the data or the noise code changed since training. The true transition is read "
        "from noise.json, and the pictures of training data may not show what the run saw.",
        workdir, differ)
    return None


def pictures_from_workdir(workdir: str) -> list[str]:
    """Writes the pictures of a saved run (`write_pictures`) and returns their paths.

    Rebuilds the data from config.json (deterministic), checks the noisy labels
    against noisy_labels.npy, and loads model.keras (checkpoint.keras when
    training did not finish).

    Raises:
      FileNotFoundError: `workdir` is not a work directory, or holds no model.
    """

    config = ml_collections.ConfigDict(require_workdir(workdir))
    model = checkpoints.load_run_model(workdir, unfinished_ok=True)
    if config.data.name in registry.FILE_DATASETS:  # Clothing1M: images stay in their files
        return run.write_pictures(workdir, model, inputs.file_inputs(config),
                                       int(config.get("seed", 0)))
    dataset, noisy = run_data(config)
    return write_pictures(
        workdir, model, dataset.x_test, dataset.y_test,
        x_train=dataset.x_train,
        noisy_labels=_saved_noisy_labels(workdir, noisy),
        clean_labels=dataset.y_train,
        class_names=dataset_class_names(dataset),
        seed=int(config.get("seed", 0)),
    )
