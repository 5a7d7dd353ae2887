"""Trains CE, Co-teaching, Mixup and CausalNL on noisy two moons (the paper's Fig. 2).

    python scripts/moons.py --config configs/moons_idn45.py --out runs/moons

Writes <out>/moons.png (noisy data and decision regions, first seed),
<out>/results.csv and <out>/results.md (clean test accuracy per method and
seed), and prints the table.
"""

import os

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from tf_causalnl.experiments import moons  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/moons_idn45.py", "A moons config file.")
_OUT = flags.DEFINE_string("out", "runs/moons", "Directory for the figure and the tables.")


def main(argv):
    del argv
    moons.run(_CONFIG.value, _OUT.value)
    print(f"figure and tables are in {os.path.abspath(_OUT.value)}")


if __name__ == "__main__":
    app.run(main)
