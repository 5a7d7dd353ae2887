"""Draws the pictures of a trained run into <workdir>/pictures/.

    python scripts/pictures.py --workdir runs/fmnist_idn45_cpu

Reconstructions and class samples (CausalNL on images), the confusion matrix
of clean test predictions, the training curves of metrics.csv, and the
estimated noisy-label transition beside the true one. The data are rebuilt
from the run's config.json and the model is read from model.keras.
"""

import sys

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from tf_causalnl.experiments import run_reports


_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a run made by scripts/train.py.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    try:
        paths = run_reports.pictures_from_workdir(_WORKDIR.value)
    except FileNotFoundError as error:  # not a run's work directory: say what to do, no traceback
        sys.exit(f"error: {error}")
    for path in paths:
        print(path)


if __name__ == "__main__":
    app.run(main)
