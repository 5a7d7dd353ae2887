"""What a user gains and risks at each kind and amount of noise: the noise spectrum.

The CPU protocol of configs/fmnist_grid_cpu.py (3,000 FashionMNIST images,
small CNN, 12 epochs) over the labels users have: clean, instance-dependent
(IDN) 10-50%, symmetric 20/40% and pair-flip 20/45%. CE, Co-teaching and
T-Revision (their forget rate, and T-Revision's transition, as the grid
gives them: the true noise rate; T-Revision's matrix estimated), and CausalNL
with the library's defaults (pull="noise"; forget_rate "auto", the noise rate
estimated from the noisy labels: what a user who does not know the noise gets)
and with the oracle forget rate; seeds 0-2. docs/RESULTS.md, "The noise
spectrum":

    python scripts/grid.py --config configs/fmnist_spectrum_cpu.py --workdir runs/fmnist_spectrum_cpu
    python scripts/paired.py runs/fmnist_spectrum_cpu --pair "causalnl (auto),coteaching" --pair "causalnl (auto),ce"

It runs as two processes with --num_shards=2 --shard=0 / --shard=1 (about
90 minutes on 2 cores).
"""

import ml_collections

from tf_causalnl.config import cpu_protocol


def get_config():
    config = cpu_protocol()  # model.pull: the constructor's default, "noise"
    config.grid = ml_collections.ConfigDict()
    config.grid.methods = ("ce", "coteaching", "trevision", "causalnl")
    config.grid.auto_methods = ("causalnl",)
    config.grid.cases = ("idn-0", "idn-0.1", "idn-0.2", "idn-0.3", "idn-0.4", "idn-0.45", "idn-0.5",
                         "symmetric-0.2", "symmetric-0.4", "pairflip-0.2", "pairflip-0.45")
    config.grid.seeds = (0, 1, 2)
    return config
