"""Surviving a kill: atomic per-epoch backups, and resuming from them.

`EpochBackup` saves, at the end of every epoch, everything a resumed run
needs: the weights of every network, the optimizer's state (its step count
too, which also seeds CausalNL's noise) and the number of finished epochs
(which sets the forget-rate schedule, and the data of the next epoch:
`data.train_dataset(..., initial_epoch=k)`). `restore` loads it into a freshly
built model and returns the epoch to pass to `fit(initial_epoch=...)`.

Every file is written under a temporary name in its final directory, then
renamed (`os.replace`, atomic on POSIX file systems), and `state.json` is
written last: a kill at any moment leaves either the previous complete
backup or the new one, never a half-written file where a good one was.
Keras' `BackupAndRestore` (Keras 3.15) writes its weights and its epoch
counter in place, one after the other, so a kill between the two resumes
the wrong epoch with the right weights; hence this callback.
"""

import csv
import io
import json
import logging
import os

import keras
import numpy as np


STATE = "state.json"
#: What a run's work directory holds: the final model, and the model of its
#: last completed epoch while training has not finished.
MODEL_FILE = "model.keras"
CHECKPOINT_FILE = "checkpoint.keras"
#: The command that makes (or resumes) a work directory, for error messages.
TRAIN_COMMAND = "python scripts/train.py --config configs/<experiment>.py --workdir {}"

_log = logging.getLogger(__name__)


def write_csv(path: str, rows: list[dict], columns) -> None:
    """Writes `rows` (dicts) as CSV with a header of `columns`, atomically; missing values stay empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, buffer.getvalue().encode())


def write_atomically(path: str, write) -> None:
    """Calls `write(temporary_path)`, then renames the result to `path`.

    The temporary name sits in the same directory (so the rename is atomic)
    and keeps `path`'s suffix (Keras chooses the format from it); it is
    removed if `write` fails.
    """
    directory, name = os.path.split(path)
    stem, dot, suffix = name.partition(".")
    temporary = os.path.join(directory, f".{stem}.tmp{os.getpid()}{dot}{suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_bytes(path: str, content: bytes) -> None:
    """Writes `content` atomically (see `write_atomically`)."""
    def write(temporary):
        with open(temporary, "wb") as f:
            f.write(content)
    write_atomically(path, write)


def write_json(path: str, value) -> None:
    """Writes JSON atomically (see `write_atomically`)."""
    def write(temporary):
        with open(temporary, "w") as f:
            json.dump(value, f, indent=2)
            f.write("\n")
    write_atomically(path, write)


def read_state(directory: str) -> dict | None:
    """The last complete backup's {"epoch", "weights"}, or None if there is none."""
    path = os.path.join(directory, STATE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class EpochBackup(keras.callbacks.Callback):
    """Backs up the model and optimizer at the end of every epoch, atomically.

    Args:
      directory: where the backups go (`<workdir>/backup` in `training.train`).
      model_path: if given, the whole model is also saved there each epoch
        (e.g. `checkpoint.keras`), atomically.
      write: False on the workers of a cluster that are not the chief: they
        keep the callback (the same code runs everywhere) but write nothing.

    An epoch whose `loss` is not finite is not backed up, so the backup
    always holds the last sound epoch.
    """

    def __init__(self, directory: str, model_path: str | None = None, write: bool = True):
        super().__init__()
        self.directory = directory
        self.model_path = model_path
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        if not self.write or not np.isfinite(float((logs or {}).get("loss", 0.0))):
            return
        os.makedirs(self.directory, exist_ok=True)
        completed = epoch + 1
        weights = f"epoch-{completed:05d}.weights.h5"
        write_atomically(os.path.join(self.directory, weights), self.model.save_weights)
        if self.model_path:
            write_atomically(self.model_path, self.model.save)
        write_json(os.path.join(self.directory, STATE), {"epoch": completed, "weights": weights})
        # Older backups, now superseded, and temporaries left by a killed run.
        for name in os.listdir(self.directory):
            if name.lstrip(".").startswith("epoch-") and name != weights:
                os.remove(os.path.join(self.directory, name))


def restore(model: keras.Model, directory: str) -> int:
    """Loads the last complete backup in `directory` into `model`.

    `model` must be built and compiled as the backed-up one was (the
    optimizer's variables are created here if it has none yet).

    Returns:
      The number of completed epochs, i.e. `fit`'s `initial_epoch`; 0 (and
      nothing loaded) when the directory holds no backup.
    """
    state = read_state(directory)
    if state is None:
        return 0
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(directory, state["weights"]))
    return int(state["epoch"])


def load_run_model(workdir: str | os.PathLike, *, unfinished_ok: bool = False, compile: bool = True) -> keras.Model:
    """The model of a run from its work directory: `model.keras`, written after its last epoch.

    Args:
      workdir: the run's work directory.
      unfinished_ok: if training has not finished, load `checkpoint.keras`
        (the last completed epoch) instead of refusing, and log that it did.
      compile: passed to `keras.saving.load_model`.

    Raises:
      FileNotFoundError: no such directory, or no model in it, saying which
        command makes or resumes it.
    """
    workdir = os.fspath(workdir)
    train = TRAIN_COMMAND.format(workdir)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"No work directory {workdir}: train one with `{train}`.")
    final, checkpoint = os.path.join(workdir, MODEL_FILE), os.path.join(workdir, CHECKPOINT_FILE)
    if os.path.isfile(final):
        return keras.saving.load_model(final, compile=compile)
    if os.path.isfile(checkpoint) and unfinished_ok:
        _log.warning("%s has no %s (training did not finish); using the model of the last completed "
                     "epoch, %s.", workdir, MODEL_FILE, CHECKPOINT_FILE)
        return keras.saving.load_model(checkpoint, compile=compile)
    if os.path.isfile(checkpoint):
        raise FileNotFoundError(f"{final} not found: the run has not finished (training writes {MODEL_FILE} "
                                "after its last epoch): rerun the same scripts/train.py command to resume it.")
    if unfinished_ok:
        raise FileNotFoundError(
            f"{workdir} has neither {MODEL_FILE} nor {CHECKPOINT_FILE}: training has not completed an epoch. "
            f"Rerun the train command that made it (`{train}`); it resumes where it stopped.")
    raise FileNotFoundError(f"{final} not found: train a model there first with `{train}`.")
