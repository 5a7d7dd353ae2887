"""The networks of CausalNL, as functional Keras models built at construction.

One branch of Algorithm 1 has four networks (Section 3.2, Appendix C):
  - q(Y|X), the classifier: any Keras model returning logits (`build_classifier`);
  - q(Z|X,Y), `build_latent_encoder`: (x, y) -> (mean, log-variance);
  - p(X|Y,Z), `build_decoder`: (z, y) -> reconstruction of x;
  - p(Y~|Y,X), `build_noisy_label_decoder`: (x, y) -> noisy-label logits.

Images get the convolutional networks of Appendix C (4 stride-2 layers of
32/64/128/256 maps, transposed 256/128/64/32; 5 layers up to 512 for large
images); vectors (tabular data, the moons illustration) get MLPs. The label y
enters a convolutional network as an extra image plane (a dense layer to H*W),
as the official code does. BatchNormalization uses momentum 0.9, PyTorch's 0.1.

Classifiers: a small CNN, an MLP, ResNet-18/34/50 trained from scratch, and
keras.applications' ResNet-50 with optional ImageNet weights (Clothing1M).
"""

import contextlib
import math
from typing import Callable, Iterator, Sequence

import keras
import numpy as np

from tf_causalnl import layers

BN_MOMENTUM = 0.9
LEAKY_SLOPE = 0.01
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


def _batch_norm() -> keras.layers.Layer:
    """Batch norm with PyTorch's momentum, through the fused kernel (`layers.BatchNormalization`)."""
    return layers.BatchNormalization(momentum=BN_MOMENTUM)


def _conv_bn_act(x, filters: int, strides: int = 1, transpose: bool = False):
    conv = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    x = conv(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = _batch_norm()(x)
    return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)


def _mlp(x, hidden_units: Sequence[int]):
    for units in hidden_units:
        x = keras.layers.Dense(units)(x)
        x = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)
    return x


def _with_label_plane(image, label, input_shape):
    """Concatenates y to an image as one extra channel: dense to H*W, reshaped."""
    height, width = input_shape[:2]
    plane = keras.layers.Dense(height * width)(label)
    plane = keras.layers.Reshape((height, width, 1))(plane)
    return keras.layers.Concatenate(axis=-1)([image, plane])


def _conv_features(x, depth: int, width: int):
    for filters in conv_filters(width, depth):
        x = _conv_bn_act(x, filters, strides=2)
    return keras.layers.Flatten()(x)


def _xy_trunk(input_shape, num_classes, depth, width, hidden_units):
    """Inputs (x, y) and the features both q(Z|X,Y) and p(Y~|Y,X) read them into."""
    x_in = keras.Input(input_shape, name="x")
    y_in = keras.Input((num_classes,), name="y")
    if _is_image(input_shape):
        h = _with_label_plane(x_in, y_in, input_shape)
        h = _conv_features(h, depth or default_vae_depth(input_shape), width)
    else:
        h = _mlp(keras.layers.Concatenate()([x_in, y_in]), hidden_units)
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
        h = _mlp(h, hidden_units)
        out = keras.layers.Dense(output_shape[0], name="reconstruction")(h)
        return keras.Model([z_in, y_in], out, name=name)

    depth = depth or default_vae_depth(output_shape)
    height, image_width, channels = output_shape
    grid_h, grid_w = math.ceil(height / 2**depth), math.ceil(image_width / 2**depth)
    filters = conv_filters(width, depth)[::-1]
    h = keras.layers.Dense(grid_h * grid_w * filters[0])(h)
    h = keras.layers.Reshape((grid_h, grid_w, filters[0]))(h)
    for f in filters[1:] + (filters[-1],):
        h = _conv_bn_act(h, f, strides=2, transpose=True)
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


# ----------------------------------------------------------------------------
# Classifiers q(Y|X). Each returns logits.


def build_small_cnn(
    input_shape: Sequence[int], num_classes: int, name: str = "small_cnn"
) -> keras.Model:
    """A CNN sized for CPU runs: four stride-2 3x3 conv layers (32/64/128/256).

    All four layers stride, so no layer works at the input's full resolution,
    which is what dominates the cost of a small CNN on a CPU.
    """
    x_in = keras.Input(input_shape, name="image")
    h = x_in
    for filters in (32, 64, 128, 256):
        h = _conv_bn_act(h, filters, strides=2)
    h = keras.layers.GlobalAveragePooling2D()(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(x_in, logits, name=name)


def build_mlp_classifier(
    input_shape: Sequence[int],
    num_classes: int,
    hidden_units: Sequence[int] = (64, 64),
    name: str = "mlp_classifier",
) -> keras.Model:
    """An MLP classifier for vector data."""
    x_in = keras.Input(input_shape, name="features")
    h = x_in if len(input_shape) == 1 else keras.layers.Flatten()(x_in)
    h = _mlp(h, hidden_units)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(x_in, logits, name=name)


def _basic_block(x, filters: int, strides: int):
    shortcut = x
    h = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    h = _batch_norm()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
    h = _batch_norm()(h)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
        shortcut = _batch_norm()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([h, shortcut]))


def _bottleneck_block(x, filters: int, strides: int):
    shortcut = x
    h = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
    h = _batch_norm()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(h)
    h = _batch_norm()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(4 * filters, 1, use_bias=False)(h)
    h = _batch_norm()(h)
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=strides, use_bias=False)(x)
        shortcut = _batch_norm()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([h, shortcut]))


RESNET_LAYOUTS = {
    18: (_basic_block, (2, 2, 2, 2)),
    34: (_basic_block, (3, 4, 6, 3)),
    50: (_bottleneck_block, (3, 4, 6, 3)),
}


def build_resnet(
    input_shape: Sequence[int],
    num_classes: int,
    depth: int = 18,
    stem: str = "cifar",
    name: str | None = None,
) -> keras.Model:
    """ResNet-18/34/50 (He et al. 2016) returning logits.

    Args:
      stem: "cifar" (a 3x3 stride-1 convolution, the stronger choice for 28-32
        pixel images) or "imagenet" (7x7 stride-2 convolution and a 3x3
        max-pool, the torchvision layout the paper's code used).
    """
    if depth not in RESNET_LAYOUTS:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}.")
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f'ResNet stem must be "cifar" or "imagenet", got {stem!r}.')
    block, repeats = RESNET_LAYOUTS[depth]
    x_in = keras.Input(input_shape, name="image")
    if stem == "cifar":
        h = keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(x_in)
    else:
        h = keras.layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False)(x_in)
    h = _batch_norm()(h)
    h = keras.layers.ReLU()(h)
    if stem == "imagenet":
        h = keras.layers.MaxPooling2D(3, strides=2, padding="same")(h)
    for stage, (filters, count) in enumerate(zip((64, 128, 256, 512), repeats)):
        for i in range(count):
            h = block(h, filters, strides=2 if (i == 0 and stage > 0) else 1)
    h = keras.layers.GlobalAveragePooling2D()(h)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(x_in, logits, name=name or f"resnet{depth}")


#: ImageNet's mean pixel, in BGR order: what the "caffe" preprocessing of
#: keras.applications' ResNet-50 subtracts from 0-255 BGR images.
IMAGENET_MEAN_BGR = (103.939, 116.779, 123.68)

#: Name prefix of the layers that hold pretrained weights; `fresh_clone`
#: copies their weights into the clone instead of initialising them afresh.
PRETRAINED_PREFIX = "pretrained_"


@keras.saving.register_keras_serializable(package="tf_causalnl")
class ImageNetPreprocessing(keras.layers.Layer):
    """Maps RGB images in [0, 1] to the input of keras.applications' ResNet-50.

    The same as `keras.applications.resnet50.preprocess_input(255 * x)`:
    scale to 0-255, reverse the channels to BGR, subtract `IMAGENET_MEAN_BGR`.
    A layer (not a Lambda) so that the classifier saves, loads, clones and
    exports like any other; it has no weights and no arguments.
    """

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype) * 255.0
        mean = keras.ops.convert_to_tensor(IMAGENET_MEAN_BGR, dtype=self.compute_dtype)
        return keras.ops.flip(images, axis=-1) - mean

    def compute_output_shape(self, input_shape):
        return input_shape


def build_imagenet_resnet50(
    input_shape: Sequence[int],
    num_classes: int,
    weights: str | None = None,
    name: str = "resnet50_imagenet",
) -> keras.Model:
    """keras.applications' ResNet-50, optionally ImageNet-pretrained, returning logits.

    Images in [0, 1] go through `ImageNetPreprocessing`, the ResNet-50 body
    with global average pooling (`include_top=False, pooling="avg"`), and a
    new dense layer to the logits. With `weights`, the body is named
    `pretrained_resnet50`, so that the second network of CausalNL,
    Co-teaching and Decoupling starts from the same pretrained body (see
    `fresh_clone`), as the paper's two ImageNet-pretrained ResNet-50s do.

    Args:
      weights: None for random initialisation, "imagenet" (Keras downloads
        them on first use into ~/.keras/models), or the path of a weights file
        of the headless ResNet-50 (keras.applications' `*_notop` weights).

    Raises:
      ValueError: the input is not RGB images of at least 32x32 pixels.
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3 or min(input_shape[:2]) < 32:
        raise ValueError(
            f"resnet50_imagenet needs RGB images of at least 32x32 pixels, shape "
            f"(H, W, 3); got inputs of shape {input_shape}. Use another classifier "
            "for grey-scale or smaller images."
        )
    body = keras.applications.ResNet50(
        include_top=False, weights=weights or None, input_shape=input_shape, pooling="avg",
        name=f"{PRETRAINED_PREFIX}resnet50" if weights else "resnet50",
    )
    x_in = keras.Input(input_shape, name="image")
    h = ImageNetPreprocessing(name="imagenet_preprocessing")(x_in)
    logits = keras.layers.Dense(num_classes, name="logits")(body(h))
    return keras.Model(x_in, logits, name=name)


CLASSIFIERS: dict[str, Callable[..., keras.Model]] = {
    "small_cnn": build_small_cnn,
    "mlp": build_mlp_classifier,
    "resnet18": lambda shape, classes, **kw: build_resnet(shape, classes, 18, **kw),
    "resnet34": lambda shape, classes, **kw: build_resnet(shape, classes, 34, **kw),
    "resnet50": lambda shape, classes, **kw: build_resnet(shape, classes, 50, **kw),
    "resnet50_imagenet": build_imagenet_resnet50,
}

#: The classifiers that take pretrained `weights` (`config.model.pretrained`).
PRETRAINED_CLASSIFIERS = ("resnet50_imagenet",)


def build_classifier(
    name: str, input_shape: Sequence[int], num_classes: int, **kwargs
) -> keras.Model:
    """Builds one of `CLASSIFIERS` by name; kwargs go to its builder (e.g. stem, weights)."""
    if name not in CLASSIFIERS:
        raise ValueError(
            f"Unknown classifier {name!r}; choose one of {sorted(CLASSIFIERS)}, "
            "or pass your own keras.Model to CausalNL."
        )
    return CLASSIFIERS[name](tuple(input_shape), num_classes, **kwargs)


def fresh_clone(classifier: keras.Model, method: str) -> keras.Model:
    """The classifier's architecture with freshly initialised weights.

    Two-network methods (CausalNL's branch 2, Co-teaching, Decoupling) need a
    second network that starts elsewhere; `method` names the caller in errors.
    Layers named `PRETRAINED_PREFIX...` (a pretrained body, as in
    `build_imagenet_resnet50` with weights) are the exception: the clone gets
    a copy of their weights, so both networks start from the pretrained
    features and differ in the rest (e.g. the new logits layer).
    """
    try:
        clone = keras.models.clone_model(classifier)
    except Exception as error:  # clone_model raises several types for subclassed models
        raise ValueError(
            f"{method} builds its second network by cloning the classifier with "
            "keras.models.clone_model, which failed for this classifier "
            f"({type(error).__name__}: {error}). Build the classifier with the "
            "functional or Sequential API, or give a subclassed model a get_config."
        ) from error
    if not clone.built:
        raise ValueError(
            f"{method} cloned the classifier but the clone is not built; build the "
            "classifier with the functional or Sequential API."
        )
    for layer in classifier.layers:
        if layer.name.startswith(PRETRAINED_PREFIX):
            clone.get_layer(layer.name).set_weights(layer.get_weights())
    pairs = list(zip(classifier.get_weights(), clone.get_weights()))
    if pairs and all(np.array_equal(a, b) for a, b in pairs):
        raise ValueError(
            f"{method} needs two differently initialised networks, but the clone "
            "of the classifier starts from the same weights, so the two would "
            "never differ. Use initializers without a fixed seed."
        )
    return clone


def check_classifier(classifier: keras.Model, dtype=None) -> None:
    """Raises a clear error unless `classifier` is a built Keras model ending in
    logits, computing under the policy `dtype` when one is given (a model's
    constructor argument: a name in `PRECISIONS` or a `keras.DTypePolicy`)."""
    if not isinstance(classifier, keras.Model):
        raise TypeError(f"classifier must be a keras.Model, got {type(classifier).__name__}.")
    if not classifier.built:
        raise ValueError(
            "The classifier is not built, so its input shape is unknown. Start "
            "it with keras.Input(shape=...) or call "
            "classifier.build((None, *input_shape)) first."
        )
    last = classifier.layers[-1] if classifier.layers else None
    if getattr(last, "activation", None) is keras.activations.softmax:
        raise ValueError(
            f"The classifier's last layer ({last.name}) applies a softmax, but "
            "the model needs logits. Use a linear output layer; the model's "
            "predict() returns the probabilities."
        )
    if dtype is not None:
        name, built_under = precision_name(dtype), policy_of(classifier)
        if built_under != name:
            raise ValueError(
                f"dtype={name!r}, but the classifier was built under {built_under!r}: "
                f"build it under the same policy (`with tf_causalnl.networks.precision({name!r}): ...`), "
                "or leave dtype unset to use the classifier's."
            )


#: The mixed-precision policies a run may build its networks under (Keras'
#: names); under the mixed ones the models cast every network's output to
#: float32 before any loss (`wrapper.float32`), and Keras' compile wraps the
#: optimizer in a LossScaleOptimizer for "mixed_float16".
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def policy_of(network: keras.Model) -> str:
    """The dtype policy `network` computes its output under: its last layer's.

    (A functional model's own policy is not saved, so a loaded one reports the
    global policy whatever its layers compute in.)
    """
    return (network.layers[-1] if network.layers else network).dtype_policy.name


def precision_name(dtype, what: str = "dtype") -> str:
    """The name in `PRECISIONS` of `dtype` (a name or a `keras.DTypePolicy`),
    or a clear error about the argument `what`."""
    name = getattr(dtype, "name", dtype)
    if name not in PRECISIONS:
        raise ValueError(f"{what} must be one of {PRECISIONS} (Keras' mixed-precision policies), got {name!r}.")
    return name


def model_precision(dtype) -> contextlib.AbstractContextManager:
    """Where a model builds its networks: under its constructor's `dtype` when
    given, else under the global policy (`keras.config.set_dtype_policy`)."""
    return contextlib.nullcontext() if dtype is None else precision(precision_name(dtype))


@contextlib.contextmanager
def precision(name: str | None) -> Iterator[None]:
    """Builds the networks made inside under Keras' dtype policy `name` (None:
    float32), and restores the previous global policy after."""
    name = precision_name(name or "float32", "precision")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
