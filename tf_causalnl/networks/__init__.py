"""Networks: the causal VAE's (`vae`), the classifiers (`classifiers`), copies and precision (`precision`).

Each `build_*` returns a built functional `keras.Model`; `layers` holds the
one custom layer they share (batch norm through TensorFlow's fused kernel).
`from tf_causalnl import networks; networks.build_small_cnn((28, 28, 1), 10)`.
"""

from tf_causalnl.networks.classifiers import (CLASSIFIERS, IMAGENET_MEAN_BGR, PRETRAINED_CLASSIFIERS,
                                              PRETRAINED_PREFIX, RESNET_LAYOUTS, ImageNetPreprocessing,
                                              build_classifier, build_imagenet_resnet50, build_mlp_classifier,
                                              build_resnet, build_small_cnn)
from tf_causalnl.networks.layers import BN_MOMENTUM, LEAKY_SLOPE
from tf_causalnl.networks.precision import (PRECISIONS, check_classifier, clone_architecture, fresh_clone,
                                            model_precision, policy_of, precision, precision_name)
from tf_causalnl.networks.vae import (VAE_WIDTH, build_decoder, build_latent_encoder, build_noisy_label_decoder,
                                      conv_filters, default_vae_depth)
