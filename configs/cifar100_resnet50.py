"""CIFAR-100 with IDN noise at the paper's scale (Section 4.1, Table 4): for GPUs.

TFDS `cifar100` (50,000 training and 10,000 clean test images, 32x32 RGB, 100
classes; TFDS downloads it on first use), ResNet-50 classifiers trained from
scratch with the torchvision stem the paper's code used
(--config.model.resnet_stem=cifar for the CIFAR stem), 150 epochs with the
forget rate ramped over 10, batch 128, Adam 1e-3, z_dim 25, random crop and
flip. A CausalNL run takes about two hours on one GPU (an estimate, not
measured here).

One run at IDN-45% (the default), or at another of the paper's rates (20, 30,
40, 45, 50%), which sets the forget rate to it too:

    python scripts/train.py --config configs/cifar100_resnet50.py \
        --workdir runs/cifar100_resnet50_idn45
    python scripts/train.py --config configs/cifar100_resnet50.py:0.3 \
        --workdir runs/cifar100_resnet50_idn30

The whole table, nine methods x five rates x five seeds (250 runs: weeks on
one GPU; N processes, one per GPU, share it with --num_shards=N --shard=i):

    python scripts/grid.py --config configs/cifar100_resnet50.py:grid \
        --workdir runs/cifar100_grid_resnet50
"""

from tf_causalnl.config import apply_variant, base_config


def get_config(variant=None):
    config = base_config()
    config.model.pull = "all"  # Algorithm 1's pull, as the paper trains (docs/OBJECTIVE.md)
    config.data.name = "cifar100"
    config.model.classifier = "resnet50"
    config.model.resnet_stem = "imagenet"
    return apply_variant(config, variant)
