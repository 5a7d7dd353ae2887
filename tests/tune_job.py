"""A tiny search in its own process, for tests/test_tuning.py.

    python tests/tune_job.py WORKDIR [--max_trials=N] [--algorithm=random] [--eager]

It tunes CausalNL (MLP networks) on a 4-d vector dataset registered here, so
nothing is downloaded. With keras-tuner's KERASTUNER_* variables set, the
process is the chief or a worker of a distributed search; it writes what
`tuning.tune` returns to WORKDIR/result-<KERASTUNER_TUNER_ID>.json.
--eager runs Keras' steps untraced (faster for two steps than tracing them).
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from tf_causalnl import data  # noqa: E402
from tf_causalnl.config import base_config, tune_section  # noqa: E402
from tf_causalnl.experiments import tuning

NAME = "tiny_tune_vectors"


def load_tiny_vectors(data_dir=None, n_train=96, n_test=32):
    """Two classes of 4-d vectors split by a line."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_train + n_test, 4)).astype("float32")
    y = (x[:, 0] + 0.3 * x[:, 1] > 0).astype("int64")
    return data.from_arrays(x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=2, name=NAME)


def register() -> None:
    """Makes `data.load_dataset(NAME)` give the tiny vectors."""
    data.LOADERS[NAME] = load_tiny_vectors


def config(algorithm: str = "random", max_trials: int = 2):
    """A search of 1-epoch trials of tiny MLP networks."""
    config = base_config()
    config.data.name = NAME
    config.data.augment = False
    config.noise.type = "symmetric"
    config.noise.rate = 0.2
    config.model.classifier = "mlp"
    config.model.z_dim = 2
    config.model.forget_rate = 0.2
    config.model.ramp_epochs = 1
    config.train.epochs = 1
    config.train.batch_size = 32
    config.train.eval_batch_size = 64
    config.train.verbose = 0
    config.tune = tune_section()
    config.tune.algorithm = algorithm
    config.tune.max_trials = max_trials
    config.tune.validation_fraction = 0.25
    config.tune.space.z_dim = (1, 4)
    config.tune.space.forget_rate = (0.1, 0.2)
    return config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--max_trials", type=int, default=2)
    parser.add_argument("--algorithm", default="random")
    parser.add_argument("--eager", action="store_true")
    args = parser.parse_args()
    if args.eager:
        import tensorflow as tf  # noqa: PLC0415

        tf.config.run_functions_eagerly(True)
    register()
    result = tuning.tune(config(args.algorithm, args.max_trials), args.workdir)
    name = os.environ.get("KERASTUNER_TUNER_ID", "single")
    with open(os.path.join(args.workdir, f"result-{name}.json"), "w") as f:
        json.dump(result, f, default=str)


if __name__ == "__main__":
    main()
