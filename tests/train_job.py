"""A small `training.train` run in its own process, for the multi-process tests.

    python tests/train_job.py WORKDIR [--strategy=multi_worker] [--deterministic]
        [--method=M] [--forget_rate=R]
        [--kill_at=EPOCH:BATCH] [--kill_in_backup=EPOCH] [--probe_keras_fit]

It trains CausalNL on a vector dataset registered here (an MLP, whose
networks have no batch normalisation). Options:
  --strategy=multi_worker  be one worker of the cluster in TF_CONFIG
  --deterministic          train.deterministic=True
  --kill_at=E:B            SIGKILL this process when batch B of epoch E starts
                           (both 0-based): a kill mid-epoch, with no chance
                           to clean up
  --kill_in_backup=E       SIGKILL it while the backup of epoch E (0-based)
                           is being written, after half of the weights file
  --probe_keras_fit        afterwards, write to WORKDIR/keras_fit_error.txt
                           what Keras' own fit raises under the strategy ("" if
                           it works; keras-team/keras issue 20585)
"""

import argparse
import os
import signal
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tf_causalnl import data, training  # noqa: E402
from tf_causalnl.training import distribute
from tf_causalnl.config import base_config  # noqa: E402

NAME = "tiny_vectors"
#: Bounds each process that `finish` waits for.
PROCESS_TIMEOUT_SECONDS = 300


def load_tiny_vectors(data_dir=None, n_train=128):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_train + 32, 4)).astype("float32")
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype("int64")
    return data.from_arrays(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=2, name=NAME)


def config(strategy: str = distribute.DEFAULT, deterministic: bool = False, forget_rate: float = 0.0,
           method: str = "causalnl"):
    """Two workers match one process only without co-teaching selection
    (per replica by design): forget_rate 0 there."""
    config = base_config()
    config.data.name = NAME
    config.noise.type = "symmetric"
    config.noise.rate = 0.2
    config.model.method = method
    config.model.warmup_epochs = 1  # DivideMix and InstanceGM: their split from the second epoch
    config.model.classifier = "mlp"
    config.model.z_dim = 2
    config.model.forget_rate = forget_rate
    config.model.ramp_epochs = 2
    config.train.epochs = 3
    config.train.batch_size = 16
    config.train.eval_batch_size = 32
    config.train.learning_rate = 1e-2
    config.train.verbose = 0
    config.train.strategy = strategy
    config.train.deterministic = deterministic
    return config


class KillAt(keras.callbacks.Callback):
    """SIGKILLs the process when batch `batch` of epoch `epoch` begins."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def kill_in_backup(epoch: int) -> None:
    """Makes the backup of `epoch` die half-way through writing its weights."""
    save_weights = keras.Model.save_weights

    def dying_save_weights(model, filepath, *args, **kwargs):
        save_weights(model, filepath, *args, **kwargs)
        if os.path.basename(filepath).startswith(f".epoch-{epoch + 1:05d}."):
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as f:
                f.truncate(size // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    keras.Model.save_weights = dying_save_weights


def keras_fit_error(strategy) -> str:
    """What Keras' own `fit` raises under `strategy` ("" if it works)."""
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    try:
        model.fit(np.ones((8, 4), "float32"), np.zeros(8, "int64"), batch_size=4, epochs=1, verbose=0)
    except Exception as error:  # noqa: BLE001 (any failure is the finding)
        return f"{type(error).__name__}: {str(error)[:200]}"
    return ""


def start(workdir, *options: str) -> subprocess.Popen:
    """This script on `workdir` in a new process, with `options`; its stdout and stderr as one text."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), str(workdir), *options],
                            env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(*processes: subprocess.Popen) -> list[tuple[int, str]]:
    """Waits for every process (each bounded); returns their (returncode, output)."""
    results = []
    try:
        for process in processes:
            output = process.communicate(timeout=PROCESS_TIMEOUT_SECONDS)[0]
            results.append((process.returncode, output))
    finally:
        for process in processes:
            process.kill()
    return results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--strategy", default=distribute.DEFAULT)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--forget_rate", type=float, default=0.0)
    parser.add_argument("--method", default="causalnl")
    parser.add_argument("--kill_at")
    parser.add_argument("--kill_in_backup", type=int)
    parser.add_argument("--probe_keras_fit", action="store_true")
    args = parser.parse_args()

    data.LOADERS[NAME] = load_tiny_vectors
    callbacks = [KillAt(*map(int, args.kill_at.split(":")))] if args.kill_at else []
    if args.kill_in_backup is not None:
        kill_in_backup(args.kill_in_backup)
    training.train(config(args.strategy, args.deterministic, args.forget_rate, args.method), args.workdir,
                   callbacks)
    if args.probe_keras_fit:
        strategy = distribute.make_strategy(args.strategy)
        error = keras_fit_error(strategy)
        if distribute.is_chief(strategy):
            with open(os.path.join(args.workdir, "keras_fit_error.txt"), "w") as f:
                f.write(error)


if __name__ == "__main__":
    main()
