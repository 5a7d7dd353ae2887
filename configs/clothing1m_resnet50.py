"""Clothing1M, real-world noisy labels (Section 4.1, Table 5): for GPUs.

Clothing1M (Xiao et al. 2015) is not downloadable by script: get it from its
authors and pass the folder, in the layout it is published in (images under
images/, the annotation .txt files in the folder or in annotations/; see
tf_causalnl/clothing1m.py). Training reads the ~1M noisy training images with
their noisy labels (`noise.type="real"`: no synthetic noise, no clean training
labels, so no clean_accuracy in metrics.csv); the clean training and
validation images are not used; the 10,526 clean test images score the model.

As in the paper: two ImageNet-pretrained ResNet-50 classifiers
(keras.applications; Keras downloads the weights on first use, or set
--config.model.pretrained=/path/to/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5),
z_dim 100, VAE networks with 5 stride-2 layers (32 to 512 maps), 40 epochs,
Adam 1e-3; images resized to 256x256 and cropped to 224x224 (random crop and
flip for training, centre crop for testing). CausalNL's second classifier
starts from the same ImageNet weights with its own freshly initialised
output layer (networks.fresh_clone), so the two differ from the first step.

Not given by the paper, so chosen here: batch 128, as for the other datasets
(--config.train.batch_size=64 if a GPU runs out of memory); a forget rate of
0.385, the share of wrong labels Xiao et al. measured (61.54% correct),
ramped over 10 epochs. The anchor-point noise estimate needs the training set
in memory, so forget_rate="auto" and the methods forward, reweight and
trevision are refused here. One run decodes 40 million JPEGs and trains two
ResNet-50s and the VAEs at 224x224: a day or more on one GPU (an estimate,
not measured here).

    python scripts/train.py --config configs/clothing1m_resnet50.py \
        --config.data.data_dir=/path/to/clothing1m --workdir runs/clothing1m_resnet50
"""

from tf_causalnl.config import base_config


def get_config():
    config = base_config()
    config.model.pull = "all"  # Algorithm 1's pull, as the paper trains (docs/OBJECTIVE.md)
    config.data.name = "clothing1m"
    config.data.image_size = 224
    config.data.resize = 256
    config.noise.type = "real"
    config.model.classifier = "resnet50_imagenet"
    config.model.pretrained = "imagenet"
    config.model.z_dim = 100
    config.model.vae_depth = 5
    config.model.forget_rate = 0.385
    config.train.epochs = 40
    config.train.eval_batch_size = 256  # 1000 images of 224x224 are a lot for one GPU
    config.train.verbose = 2
    return config
