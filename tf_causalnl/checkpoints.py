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

import json
import os

import keras
import numpy as np

STATE = "state.json"


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
