"""Hyper-parameter search for CausalNL on FashionMNIST, IDN-45%, sized for a 2-core CPU.

The training protocol of configs/fmnist_idn45_cpu.py made smaller per trial: a
seeded 4,000-image subset of the training set (20% of it held out, with its
noisy labels, as the objective's validation split), 4 epochs with the forget
rate ramped over 2, the VAE's first layer 16 maps wide, and the first 5,000
clean test images for the clean accuracy logged beside the objective. Twelve
random-search trials over the space of `tune_section()` (β0-β3 and the
learning rate a decade either side of the defaults, z_dim 1-128, forget rate
0.3/0.45/0.6/auto) take about half an hour here (docs/RESULTS.md).

    python scripts/tune.py --config configs/tune_fmnist_idn45_cpu.py \
        --workdir runs/tune_fmnist_idn45_cpu --max_trials=12
"""

from tf_causalnl.config import base_config, tune_section


def get_config():
    config = base_config()
    config.model.pull = "all"  # Algorithm 1's pull, with which this file's results were measured (docs/OBJECTIVE.md)
    config.data.train_size = 4000
    config.data.test_size = 5000
    config.model.classifier = "small_cnn"
    config.model.vae_width = 16
    config.model.ramp_epochs = 2
    config.estimate.epochs = 5  # the anchor-point estimate, for forget_rate="auto"
    config.train.epochs = 4
    config.train.verbose = 0

    config.tune = tune_section()
    # With 7 searched values, Bayesian optimisation draws its first 21 trials
    # at random anyway; at this budget random search is what runs.
    config.tune.algorithm = "random"
    config.tune.max_trials = 12
    return config
