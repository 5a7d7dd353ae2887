"""Exports a trained run's classifier as a TF Serving SavedModel version.

    python scripts/export.py --workdir runs/fmnist_idn45_cpu --base_dir exports \
        [--model_name causalnl] [--version 3]

Writes <base_dir>/<model_name>/<version>/ (the next free version unless
--version is given) and prints its path; docs/SERVING.md shows how to serve it.
"""


import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from tf_causalnl.export import serving


_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a finished scripts/train.py run.")
_BASE_DIR = flags.DEFINE_string("base_dir", None, "Folder of TF Serving models, e.g. exports.")
_MODEL_NAME = flags.DEFINE_string(
    "model_name", None, "Model folder under --base_dir; default: the run's model.method, e.g. causalnl.")
_VERSION = flags.DEFINE_integer(
    "version", None, "Version number; default: one more than the largest.", lower_bound=0)
flags.mark_flags_as_required(["workdir", "base_dir"])


def main(argv):
    del argv
    print(serving.export_run(_WORKDIR.value, _BASE_DIR.value, _MODEL_NAME.value, _VERSION.value))


if __name__ == "__main__":
    app.run(main)
