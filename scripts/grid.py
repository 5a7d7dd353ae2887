"""Runs a benchmark grid (methods x noise types x rates x seeds) into a work directory.

    python scripts/grid.py --config configs/<grid config>.py --workdir runs/<name>

A grid config is a training config with a `grid` section (see
tf_causalnl/grid.py). Rerunning the command skips finished cells and resumes
the interrupted one; adding seeds, methods or rates to the grid section extends
the same work directory. At the end it prints the Markdown table. With
`--report_only` it rebuilds results.csv, results.md and accuracy_vs_noise.png
from the finished cells without training (`--config` is then optional: the
work directory's grid_config.json is used).

Two processes share a grid on a 2-core machine with `--num_shards=2` and
`--shard=0` / `--shard=1` (same config and work directory).
"""

import os

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402
from tf_causalnl.experiments import grid, grid_report


_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a grid config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the grid's runs and results.")
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Only rebuild the results files from finished cells; train nothing."
)
_SHARD = flags.DEFINE_integer("shard", 0, "Train only the cells with index = shard mod num_shards.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 1, "Processes sharing the grid (run one per shard).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    if _REPORT_ONLY.value:
        table = grid_report.report(_WORKDIR.value, _CONFIG.value)
    elif _CONFIG.value is None:
        raise app.UsageError("--config is required unless --report_only is given.")
    else:
        table = grid.run(_CONFIG.value, _WORKDIR.value, shard=_SHARD.value, num_shards=_NUM_SHARDS.value)
    print(table, end="")
    print(f"Results in {os.path.abspath(_WORKDIR.value)}")


if __name__ == "__main__":
    app.run(main)
