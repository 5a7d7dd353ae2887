"""A classifier's second copy and its checks, and mixed-precision policies by name.

What every two-network model needs of the user's classifier: a fresh clone
(`fresh_clone`), a check that it is a built Keras model under the expected
policy (`check_classifier`), and the policy helpers.
"""

import contextlib
from typing import Iterator

import keras
import numpy as np

from tf_causalnl.networks.classifiers import PRETRAINED_PREFIX


def clone_architecture(classifier: keras.Model, purpose: str) -> keras.Model:
    """`keras.models.clone_model(classifier)`, or a ValueError that says why a clone was needed and how to allow it.

    `purpose` opens the message, e.g. "estimate_noise trains a copy of the classifier".
    """
    try:
        return keras.models.clone_model(classifier)
    except Exception as error:  # clone_model raises several types for subclassed models
        raise ValueError(
            f"{purpose} with keras.models.clone_model, which failed for this classifier "
            f"({type(error).__name__}: {error}). Build the classifier with the functional or "
            "Sequential API, or give a subclassed model a get_config."
        ) from error


def fresh_clone(classifier: keras.Model, method: str) -> keras.Model:
    """The classifier's architecture with freshly initialised weights.

    Two-network methods (CausalNL's branch 2, Co-teaching, Decoupling) need a
    second network that starts elsewhere; `method` names the caller in errors.
    Layers named `PRETRAINED_PREFIX...` (a pretrained body, as in
    `build_imagenet_resnet50` with weights) are the exception: the clone gets
    a copy of their weights, so both networks start from the pretrained
    features and differ in the rest (e.g. the new logits layer).
    """
    clone = clone_architecture(classifier, f"{method} builds its second network by cloning the classifier")
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
