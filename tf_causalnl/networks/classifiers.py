"""Classifiers q(Y|X) by name: the small CNN, an MLP, ResNets and an ImageNet ResNet-50.

Each returns logits; `build_classifier(name, ...)` picks one from `CLASSIFIERS`.
"""

from typing import Callable, Sequence

import keras

from tf_causalnl.networks import layers


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
        h = layers.conv_bn_act(h, filters, strides=2)
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
    h = layers.mlp(h, hidden_units)
    logits = keras.layers.Dense(num_classes, name="logits")(h)
    return keras.Model(x_in, logits, name=name)


def _basic_block(x, filters: int, strides: int):
    shortcut = x
    h = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    h = layers.batch_norm()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
    h = layers.batch_norm()(h)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x)
        shortcut = layers.batch_norm()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([h, shortcut]))


def _bottleneck_block(x, filters: int, strides: int):
    shortcut = x
    h = keras.layers.Conv2D(filters, 1, use_bias=False)(x)
    h = layers.batch_norm()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(h)
    h = layers.batch_norm()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(4 * filters, 1, use_bias=False)(h)
    h = layers.batch_norm()(h)
    if strides != 1 or x.shape[-1] != 4 * filters:
        shortcut = keras.layers.Conv2D(4 * filters, 1, strides=strides, use_bias=False)(x)
        shortcut = layers.batch_norm()(shortcut)
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
    h = layers.batch_norm()(h)
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
