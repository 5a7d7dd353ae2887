"""The paper's illustration (Fig. 2): two moons with IDN-45%, MLPs, a 1-dimensional Z.

CE, Co-teaching, Mixup and CausalNL, each over five seeds; a few minutes on a
2-core CPU. Writes the four-panel figure, results.csv and results.md:

    python scripts/moons.py --config configs/moons_idn45.py --out runs/moons

Try another dimension of Z with --config.model.z_dim=2, or fewer seeds with
--config.moons.seeds=0,1.
"""

from tf_causalnl.config import moons_config


def get_config():
    return moons_config()
