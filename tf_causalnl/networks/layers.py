"""The layers every network is built from: fused batch norm, conv-BN-leaky-ReLU blocks, MLPs.

`batch_norm`, `conv_bn_act` and `mlp` are the blocks the VAE's networks and
the classifiers share (batch norm with PyTorch's momentum of 0.1, leaky ReLU
with slope 0.01, as the official code has them).

`BatchNormalization` is Keras' layer computed by TensorFlow's fused kernel:
Keras 3 normalises with `tf.nn.moments` and `tf.nn.batch_normalization`, a
dozen element-wise ops forward and more backward, where `FusedBatchNormV3`
is one op each way (oneDNN's on a CPU). Same variables, same config, same
numbers up to float round-off (docs/SPEED.md measures what it does to a
CausalNL step).
"""

from typing import Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tf_causalnl")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` through `tf.compat.v1.nn.fused_batch_norm`.

    Named like Keras' layer on purpose: Keras keys a saved model's weights by
    the snake-cased class name, so a `.keras` file written with Keras' layer
    loads into this one and back. Anything the fused kernel does not cover
    (inputs other than 4-D channels-last, masks, renorm, synchronized
    statistics, no scale or centre) goes to Keras' implementation.

    Training updates the moving averages with the biased batch variance, as
    Keras does; the fused kernel returns the unbiased one, which is rescaled.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (len(inputs.shape) == 4 and self.axis in (-1, 3) and mask is None and self.scale
                and self.center and not self.renorm and not self.synchronized)

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)  # statistics in float32 under mixed precision, as Keras does
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True)[:3]
            shape = tf.shape(x)
            count = tf.cast(shape[0] * shape[1] * shape[2], tf.float32)
            variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / count
            momentum = self.momentum
            self.moving_mean.assign(self.moving_mean * momentum + tf.cast(mean, self.moving_mean.dtype)
                                    * (1.0 - momentum))
            self.moving_variance.assign(self.moving_variance * momentum
                                        + tf.cast(variance, self.moving_variance.dtype) * (1.0 - momentum))
        else:
            outputs = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=False)[0]
        return tf.cast(outputs, self.compute_dtype)


#: Keras' momentum of the moving statistics: 0.9, which is PyTorch's 0.1.
BN_MOMENTUM = 0.9
#: Slope of the leaky ReLU for negative inputs.
LEAKY_SLOPE = 0.01


def batch_norm() -> keras.layers.Layer:
    """Batch norm with PyTorch's momentum, through the fused kernel (`BatchNormalization`)."""
    return BatchNormalization(momentum=BN_MOMENTUM)


def conv_bn_act(x, filters: int, strides: int = 1, transpose: bool = False):
    """A 3x3 convolution (transposed if asked) without bias, batch norm, leaky ReLU."""
    conv = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
    x = conv(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)


def mlp(x, hidden_units: Sequence[int]):
    """Dense layers of `hidden_units`, each with a leaky ReLU."""
    for units in hidden_units:
        x = keras.layers.Dense(units)(x)
        x = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE)(x)
    return x
