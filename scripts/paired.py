"""Compares methods of finished grids seed by seed: A − B, its mean ± standard error.

    python scripts/paired.py runs/fmnist_dividemix_cpu --pair dividemix,coteaching \
        --pair instancegm,coteaching --pair instancegm,dividemix

Each positional argument is a grid's work directory (its results.csv, as
scripts/grid.py writes it), optionally PATH=TAG: the tag is added to that
grid's method labels ("instancegm TAG"), so that two grids of one method can
be compared. Prints the per-seed differences in points, their mean ±
standard error and the mean in standard errors, then each method's seconds
per run (tf_causalnl.experiments.grid_report.compare).
"""

import sys

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from tf_causalnl.experiments import grid_report  # noqa: E402

_PAIRS = flags.DEFINE_multi_string("pair", [], "A,B: the labels to compare, A − B; B may be X|Y, the better of X and Y on each seed.")


def main(argv):
    pairs = [tuple(p.split(",")) for p in _PAIRS.value]
    if len(argv) < 2 or not pairs or any(len(p) != 2 for p in pairs):
        raise app.UsageError("give one or more grid work directories and --pair A,B (two labels) at least once.")
    try:
        print(grid_report.compare(argv[1:], pairs), end="")
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
