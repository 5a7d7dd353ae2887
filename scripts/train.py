"""Trains a model from a config file into a work directory.

    python scripts/train.py --config configs/fmnist_idn45_cpu.py \
        --workdir runs/fmnist_idn45_cpu [--config.noise.rate=0.5 ...]

Rerunning the same command on the same work directory resumes the run.
"""

import json

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from tf_causalnl import training  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for logs, checkpoints and the model.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    results = training.train(_CONFIG.value, _WORKDIR.value)
    print(json.dumps(results, indent=2))
    mean_key = f"clean_test_accuracy_mean_last_{training.LAST_EPOCHS}"
    print(
        f"clean test accuracy: {results['clean_test_accuracy_last']:.4f} (last epoch), "
        f"{results[mean_key]:.4f} (mean of the last {min(results['epochs'], training.LAST_EPOCHS)} epochs); "
        f"everything is in {results['workdir']}"
    )


if __name__ == "__main__":
    app.run(main)
