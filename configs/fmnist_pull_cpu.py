"""Where the generative half should pull q(Y|X): clean, IDN-20% and IDN-45% labels.

The CPU protocol of configs/fmnist_grid_cpu.py (3,000 FashionMNIST images,
small CNN, 12 epochs), CE, Co-teaching and CausalNL at the oracle forget rate
(the noise rate; 0 on clean labels), seeds 0-2. The same grid with
`--config.model.pull=untrusted` and CausalNL alone, also with the estimated
forget rate ("auto", what a user who does not know the noise rate gets),
gives the other arm of the comparison (docs/RESULTS.md):

    python scripts/grid.py --config configs/fmnist_pull_cpu.py --workdir runs/fmnist_pull_cpu
    python scripts/grid.py --config configs/fmnist_pull_cpu.py --workdir runs/fmnist_pull_untrusted \\
        --config.model.pull=untrusted "--config.grid.methods=('causalnl',)" "--config.grid.auto_methods=('causalnl',)"
    python scripts/paired.py runs/fmnist_pull_cpu runs/fmnist_pull_untrusted=untrusted \\
        --pair "causalnl untrusted,coteaching" --pair "causalnl untrusted,causalnl"

Each grid runs as two processes with --num_shards=2 --shard=0 / --shard=1.
"""

import ml_collections

from tf_causalnl.config import cpu_protocol


def get_config():
    config = cpu_protocol()
    config.model.pull = "all"  # Algorithm 1's pull, with which this file's results were measured (docs/OBJECTIVE.md)
    config.grid = ml_collections.ConfigDict()
    config.grid.methods = ("ce", "coteaching", "causalnl")
    config.grid.auto_methods = ()
    config.grid.noise_types = ("idn",)
    config.grid.noise_rates = (0.0, 0.2, 0.45)
    config.grid.seeds = (0, 1, 2)
    return config
