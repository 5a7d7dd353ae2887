"""FashionMNIST, IDN-45%, at the paper's scale (Section 4.1): for a GPU.

ResNet-18 classifiers, 150 epochs, batch 128, z_dim 25, random crop and flip.
The paper's code built its ResNets with the torchvision (ImageNet) stem even
for 28x28 images; set --config.model.resnet_stem=cifar for the stronger
CIFAR-style stem. Other rates: --config.noise.rate and --config.model.forget_rate.

    python scripts/train.py --config configs/fmnist_resnet18.py \
        --workdir runs/fmnist_resnet18_idn45
"""

from tf_causalnl.config import base_config


def get_config():
    config = base_config()
    config.model.classifier = "resnet18"
    config.model.resnet_stem = "imagenet"
    return config
