"""The paper's FashionMNIST benchmark (Table 1) at full scale: for GPUs.

Nine methods x IDN 20/30/40/45/50% x 5 seeds, ResNet-18 classifiers (the
torchvision stem, as the paper's code builds them), 150 epochs with the
forget rate ramped over 10, batch 128, Adam 1e-3, z_dim 25, random crop and
flip; the metric is the mean clean test accuracy of the last 10 epochs.
That is 250 runs of 150 epochs: days on one GPU. Add
--config.train.strategy=mirrored to use every local GPU in each run. The same
grid as `configs/fmnist_resnet18.py:grid` (the scheme of the other datasets'
configs; tests/test_configs.py checks that the two agree).

    python scripts/grid.py --config configs/fmnist_grid_resnet18.py \
        --workdir runs/fmnist_grid_resnet18
"""

from tf_causalnl.config import base_config, table_1_grid


def get_config():
    config = base_config()
    config.model.pull = "all"  # Algorithm 1's pull, as the paper trains (docs/OBJECTIVE.md)
    config.model.classifier = "resnet18"
    config.model.resnet_stem = "imagenet"
    config.train.verbose = 2

    config.grid = table_1_grid(seeds=(0, 1, 2, 3, 4))
    return config
