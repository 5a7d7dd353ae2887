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


def relaxed_label_sample(logits: tf.Tensor, temperature: float, seed: tf.Tensor) -> tf.Tensor:
    """A reparameterised sample of `relaxed_label_posterior`, the same for any device split.

    softmax((logits + g) / temperature) with standard Gumbel noise g, which is
    how `tfd.RelaxedOneHotCategorical` samples; g is drawn for the whole
    global batch and this replica takes its rows (`replica_rows`), so one
    step on several devices draws what it draws on one.
    """
    gumbel = replica_rows(tfd.Gumbel(0.0, 1.0), logits, seed)
    return tf.nn.softmax((logits + gumbel) / temperature, axis=-1)


def latent_sample(mean: tf.Tensor, log_variance: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """A reparameterised sample of `latent_posterior`, the same for any device split."""
    posterior = latent_posterior(mean, log_variance)
    return posterior.bijector.forward(replica_rows(tfd.Normal(0.0, 1.0), mean, seed))


def replica_rows(noise: tfd.Distribution, like: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Noise shaped like `like`: this replica's rows of a draw for the global batch.

    Under a `tf.distribute` strategy each replica holds a contiguous slice of
    the global batch (replica r has rows r*b .. r*b + b - 1); drawing the
    noise of all rows from one stateless seed and keeping the replica's slice
    makes a step's randomness independent of how the batch is split.
    """
    seed = tf.cast(seed, tf.int32)  # TFP's samplers take int32 seed pairs
    replica = tf.distribute.get_replica_context()
    if replica is None or replica.num_replicas_in_sync == 1:
        return noise.sample(tf.shape(like), seed=seed)
    rows = tf.shape(like)[0]
    shape = tf.concat([[rows * replica.num_replicas_in_sync], tf.shape(like)[1:]], axis=0)
    start = tf.cast(replica.replica_id_in_sync_group, tf.int32) * rows
    return noise.sample(shape, seed=seed)[start:start + rows]


def latent_posterior(mean: tf.Tensor, log_variance: tf.Tensor) -> tfd.Distribution:
    """q(Z|X,Y): a diagonal Gaussian with the encoder's mean and log-variance."""
    return tfd.MultivariateNormalDiag(loc=mean, scale_diag=tf.exp(0.5 * log_variance))


def latent_prior(z_dim: int, dtype=tf.float32) -> tfd.Distribution:
    """P(Z): the standard normal of Section 3.1."""
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([z_dim], dtype), scale_diag=tf.ones([z_dim], dtype)
    )
