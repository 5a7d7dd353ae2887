"""The generative networks of the causal VAE (Appendix C): q(Z|X,Y), p(X|Y,Z), p(Y~|Y,X).

One branch of Algorithm 1 has, beside the classifier q(Y|X):
  - q(Z|X,Y), `build_latent_encoder`: (x, y) -> (mean, log-variance);
  - p(X|Y,Z), `build_decoder`: (z, y) -> reconstruction of x;
  - p(Y~|Y,X), `build_noisy_label_decoder`: (x, y) -> noisy-label logits.

Images get Appendix C's convolutional networks (4 stride-2 layers of
32/64/128/256 maps, transposed 256/128/64/32; 5 layers up to 512 for large
images); vectors (tabular data, the moons illustration) get MLPs. The label y
enters a convolutional network as an extra image plane (a dense layer to H*W),
as the official code does. Each `build_*` returns a built functional model.
"""

import math
from typing import Sequence

import keras

from tf_causalnl.networks import layers


#: Maps of the first stride-2 layer of q(Z|X,Y) and p(Y~|Y,X); each next layer
#: doubles them (32/64/128/256, then 512: Appendix C). p(X|Y,Z) mirrors them.
VAE_WIDTH = 32


def conv_filters(width: int, depth: int) -> tuple[int, ...]:
    """Maps of the `depth` stride-2 layers: `width`, doubling per layer."""
    if int(width) < 1:
        raise ValueError(f"The VAE width must be a positive number of maps, got {width}.")
    return tuple(int(width) * 2**i for i in range(depth))


def default_vae_depth(input_shape: Sequence[int]) -> int:
    """4 stride-2 layers for small images (FashionMNIST, CIFAR), 5 from 64 pixels up."""
    return 5 if min(input_shape[:2]) >= 64 else 4


def _is_image(input_shape: Sequence[int]) -> bool:
    return len(input_shape) == 3


def _with_label_plane(image, label, input_shape):
    """Concatenates y to an image as one extra channel: dense to H*W, reshaped."""
    height, width = input_shape[:2]
    plane = keras.layers.Dense(height * width)(label)
    plane = keras.layers.Reshape((height, width, 1))(plane)
    return keras.layers.Concatenate(axis=-1)([image, plane])


def _conv_features(x, depth: int, width: int):
    for filters in conv_filters(width, depth):
        x = layers.conv_bn_act(x, filters, strides=2)
    return keras.layers.Flatten()(x)


def _xy_trunk(input_shape, num_classes, depth, width, hidden_units):
    """Inputs (x, y) and the features both q(Z|X,Y) and p(Y~|Y,X) read them into."""
    x_in = keras.Input(input_shape, name="x")
    y_in = keras.Input((num_classes,), name="y")
    if _is_image(input_shape):
        h = _with_label_plane(x_in, y_in, input_shape)
        h = _conv_features(h, depth or default_vae_depth(input_shape), width)
    else:
        h = layers.mlp(keras.layers.Concatenate()([x_in, y_in]), hidden_units)
    return [x_in, y_in], h


def build_latent_encoder(
    input_shape: Sequence[int],
    num_classes: int,
    z_dim: int,
    depth: int | None = None,
    hidden_units: Sequence[int] = (64, 64),
    width: int = VAE_WIDTH,
    name: str = "latent_encoder",
) -> keras.Model:
    """q(Z|X,Y): (x, y) -> (mean, log-variance) of a diagonal Gaussian over Z."""
    inputs, h = _xy_trunk(input_shape, num_classes, depth, width, hidden_units)
    mean = keras.layers.Dense(z_dim, name="z_mean")(h)
    log_variance = keras.layers.Dense(z_dim, name="z_log_variance")(h)
    return keras.Model(inputs, [mean, log_variance], name=name)


def build_decoder(
    output_shape: Sequence[int],
    num_classes: int,
    z_dim: int,
    depth: int | None = None,
    hidden_units: Sequence[int] = (64, 64),
    width: int = VAE_WIDTH,
    name: str = "decoder",
) -> keras.Model:
    """p(X|Y,Z): (z, y) -> reconstruction of x.

    Images: a dense layer to a small grid of the widest maps, `depth` stride-2
    transposed convolutions (256/128/64/32 for depth 4 and width 32), a 3x3 convolution to
    the image's channels with a sigmoid (inputs are scaled to [0, 1]), and a
    centre crop to the image size (28 is reached as 32 cropped by 2 each side).
    Vectors: an MLP with a linear output.
    """
    z_in = keras.Input((z_dim,), name="z")
    y_in = keras.Input((num_classes,), name="y")
    h = keras.layers.Concatenate()([z_in, y_in])
    if not _is_image(output_shape):
        h = layers.mlp(h, hidden_units)
        out = keras.layers.Dense(output_shape[0], name="reconstruction")(h)
        return keras.Model([z_in, y_in], out, name=name)

    depth = depth or default_vae_depth(output_shape)
    height, image_width, channels = output_shape
    grid_h, grid_w = math.ceil(height / 2**depth), math.ceil(image_width / 2**depth)
    filters = conv_filters(width, depth)[::-1]
    h = keras.layers.Dense(grid_h * grid_w * filters[0])(h)
    h = keras.layers.Reshape((grid_h, grid_w, filters[0]))(h)
    for f in filters[1:] + (filters[-1],):
        h = layers.conv_bn_act(h, f, strides=2, transpose=True)
    h = keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid")(h)
    extra_h, extra_w = grid_h * 2**depth - height, grid_w * 2**depth - image_width
    crop = ((extra_h // 2, extra_h - extra_h // 2), (extra_w // 2, extra_w - extra_w // 2))
    out = keras.layers.Cropping2D(crop, name="reconstruction")(h)
    return keras.Model([z_in, y_in], out, name=name)


def build_noisy_label_decoder(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int | None = None,
    hidden_units: Sequence[int] = (64, 64),
    width: int = VAE_WIDTH,
    name: str = "noisy_label_decoder",
) -> keras.Model:
    """p(Y~|Y,X): (x, y) -> logits of the noisy label (fed the reconstruction x1)."""
    inputs, h = _xy_trunk(input_shape, num_classes, depth, width, hidden_units)
    logits = keras.layers.Dense(num_classes, name="noisy_logits")(h)
    return keras.Model(inputs, logits, name=name)
