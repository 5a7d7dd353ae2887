"""SVHN with IDN noise at the paper's scale (Section 4.1, Table 2): for GPUs.

TFDS `svhn_cropped` (73,257 training and 26,032 clean test images, 32x32 RGB;
TFDS downloads it on first use), ResNet-34 classifiers with the torchvision
stem the paper's code used (--config.model.resnet_stem=cifar for the CIFAR
stem), 150 epochs with the forget rate ramped over 10, batch 128, Adam 1e-3,
z_dim 25, random crop and flip. A CausalNL run takes a few hours on one GPU
(an estimate, not measured here).

One run at IDN-45% (the default), or at another of the paper's rates (20, 30,
40, 45, 50%), which sets the forget rate to it too:

    python scripts/train.py --config configs/svhn_resnet34.py \
        --workdir runs/svhn_resnet34_idn45
    python scripts/train.py --config configs/svhn_resnet34.py:0.3 \
        --workdir runs/svhn_resnet34_idn30

The whole table, nine methods x five rates x five seeds (250 runs: weeks on
one GPU; N processes, one per GPU, share it with --num_shards=N --shard=i):

    python scripts/grid.py --config configs/svhn_resnet34.py:grid \
        --workdir runs/svhn_grid_resnet34
"""

from tf_causalnl.config import apply_variant, base_config


def get_config(variant=None):
    config = base_config()
    config.model.pull = "all"  # Algorithm 1's pull, as the paper trains (docs/OBJECTIVE.md)
    config.data.name = "svhn_cropped"
    config.model.classifier = "resnet34"
    config.model.resnet_stem = "imagenet"
    return apply_variant(config, variant)
