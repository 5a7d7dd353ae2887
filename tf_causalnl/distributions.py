"""Turns the networks' output tensors into TensorFlow Probability distributions.

The networks return plain tensors; everything probabilistic in CausalNL (the
relaxed one-hot sample of Y, the reparameterised sample of Z, the categorical
entropy of q(Y|X) and the Gaussian KL to P(Z)) is read off these objects, so the
loss module reads like the ELBO of Eq. 6.
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def label_posterior(logits: tf.Tensor) -> tfd.Distribution:
    """q(Y|X): a categorical distribution over the clean classes."""
    return tfd.Categorical(logits=logits)


def relaxed_label_posterior(logits: tf.Tensor, temperature: float) -> tfd.Distribution:
    """The Gumbel-softmax relaxation of q(Y|X), reparameterised (Algorithm 1, line 3)."""
    return tfd.RelaxedOneHotCategorical(temperature, logits=logits)


def latent_posterior(mean: tf.Tensor, log_variance: tf.Tensor) -> tfd.Distribution:
    """q(Z|X,Y): a diagonal Gaussian with the encoder's mean and log-variance."""
    return tfd.MultivariateNormalDiag(loc=mean, scale_diag=tf.exp(0.5 * log_variance))


def latent_prior(z_dim: int, dtype=tf.float32) -> tfd.Distribution:
    """P(Z): the standard normal of Section 3.1."""
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([z_dim], dtype), scale_diag=tf.ones([z_dim], dtype)
    )
