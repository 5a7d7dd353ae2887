"""The CausalNL objective: negative ELBO (Eq. 6, Appendix B) plus co-teaching.

Every function here is a pure function of tensors and returns one value per
example, so each term can be tested against numbers computed by hand and the
model reduces them once, for the global batch, under any `tf.distribute`
strategy (`tf.nn.compute_average_loss`).

Per branch and per example, with d the number of input values:

    beta0 * |x - x1|_1 / d              reconstruction, -log p(X|Y,Z) up to a constant
  + beta1 * CE(noisy_logits, y~)        -log p(Y~|Y,X)
  + beta2 * sum_y q(y|x) log q(y|x)     KL(q(Y|X) || uniform P(Y)) up to a constant
  + beta3 * KL(q(Z|X,Y) || N(0, I))     closed form, summed over the z dimensions
  + co-teaching cross-entropy on the examples the peer branch selected
"""

from typing import NamedTuple, Sequence

import tensorflow as tf

from tf_causalnl import distributions

#: Appendix B: beta0 = beta1 = 0.1, beta2 = 1e-5, beta3 = 0.01.
DEFAULT_BETAS = (0.1, 0.1, 1e-5, 0.01)


class BranchOutputs(NamedTuple):
    """What one branch of Algorithm 1 computes for a batch."""

    logits: tf.Tensor  # q(Y|X), (batch, classes)
    z_mean: tf.Tensor  # q(Z|X,Y), (batch, z_dim)
    z_log_variance: tf.Tensor  # q(Z|X,Y), (batch, z_dim)
    reconstruction: tf.Tensor  # p(X|Y,Z), shaped like x
    noisy_logits: tf.Tensor  # p(Y~|Y,X), (batch, classes)


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of integer labels under softmax(logits)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=logits
    )


def reconstruction_l1(x: tf.Tensor, reconstruction: tf.Tensor) -> tf.Tensor:
    """Per-example |x - x1|_1 / d: the mean absolute error over all input values."""
    axes = tf.range(1, tf.rank(x))
    return tf.reduce_mean(tf.abs(x - reconstruction), axis=axes)


def negative_entropy(logits: tf.Tensor) -> tf.Tensor:
    """Per-example sum_y q(y|x) log q(y|x), i.e. -H(q(Y|X)).

    Minimising it is minimising KL(q(Y|X) || P(Y)) for a uniform P(Y), which
    differs from it by the constant log(num_classes) (Section 3.2).
    """
    return -distributions.label_posterior(logits).entropy()


def latent_kl(mean: tf.Tensor, log_variance: tf.Tensor) -> tf.Tensor:
    """Per-example KL(q(Z|X,Y) || N(0, I)), summed over the latent dimensions.

    Equals -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2) (Section 3.2).
    """
    posterior = distributions.latent_posterior(mean, log_variance)
    prior = distributions.latent_prior(mean.shape[-1], mean.dtype)
    return distributions.tfd.kl_divergence(posterior, prior)


def num_to_keep(batch_size: tf.Tensor, forget_rate: tf.Tensor) -> tf.Tensor:
    """How many small-loss examples co-teaching keeps: round((1 - rate) * batch), at least 1."""
    batch = tf.cast(batch_size, tf.float32)
    keep = tf.round((1.0 - tf.cast(forget_rate, tf.float32)) * batch)
    return tf.cast(tf.clip_by_value(keep, 1.0, batch), tf.int32)


def small_loss_mask(per_example_loss: tf.Tensor, forget_rate: tf.Tensor) -> tf.Tensor:
    """A 0/1 float mask of the examples with the smallest loss (Han et al. 2018).

    Keeps `num_to_keep` examples; ties go to the earlier example. The mask
    carries no gradient: selection is a decision, not part of the objective.
    """
    per_example_loss = tf.stop_gradient(per_example_loss)
    batch = tf.shape(per_example_loss)[0]
    _, kept = tf.math.top_k(-per_example_loss, k=num_to_keep(batch, forget_rate))
    return tf.scatter_nd(kept[:, None], tf.ones_like(kept, tf.float32), [batch])


def coteaching(
    logits1: tf.Tensor, logits2: tf.Tensor, labels: tf.Tensor, forget_rate: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Co-teaching's exchange of small-loss selections (Algorithm 1, line 5).

    Each classifier ranks the batch by its own cross-entropy against the noisy
    labels; each is trained on the selection of its peer.

    Returns:
      (loss1, loss2, mask1, mask2): per-example losses of classifiers 1 and 2,
      and the selections made by classifiers 1 and 2. loss1 is the
      cross-entropy of classifier 1 on the examples classifier 2 selected,
      scaled by batch / kept so that averaging it over the batch gives the mean
      over the selection (once: the public code divides by the count twice).
    """
    ce1 = cross_entropy(logits1, labels)
    ce2 = cross_entropy(logits2, labels)
    mask1 = small_loss_mask(ce1, forget_rate)
    mask2 = small_loss_mask(ce2, forget_rate)
    scale = tf.cast(tf.shape(ce1)[0], ce1.dtype) / tf.reduce_sum(mask1)
    return ce1 * mask2 * scale, ce2 * mask1 * scale, mask1, mask2


def elbo_terms(x: tf.Tensor, labels: tf.Tensor, out: BranchOutputs) -> dict:
    """The four per-example terms of one branch's negative ELBO, unweighted."""
    return {
        "reconstruction": reconstruction_l1(x, out.reconstruction),
        "noisy_label_ce": cross_entropy(out.noisy_logits, labels),
        "negative_entropy": negative_entropy(out.logits),
        "kl_z": latent_kl(out.z_mean, out.z_log_variance),
    }


def causalnl_objective(
    x: tf.Tensor,
    labels: tf.Tensor,
    branches: tuple[BranchOutputs, BranchOutputs],
    forget_rate: tf.Tensor,
    betas: Sequence[float] = DEFAULT_BETAS,
) -> dict:
    """The loss both branches minimise, reduced for the global batch.

    Args:
      x: the input batch.
      labels: the observed (noisy) integer labels.
      branches: the outputs of branch 1 and branch 2.
      forget_rate: the current co-teaching forget rate.
      betas: (beta0, beta1, beta2, beta3) of Appendix B.

    Returns:
      A dict with "loss", the scalar objective divided by the global batch
      size (sum over replicas gives the mean over the global batch); "terms",
      per-example unweighted terms averaged over the two branches, for
      logging; and "selections", the small-loss masks of classifiers 1 and 2.
    """
    beta0, beta1, beta2, beta3 = betas
    out1, out2 = branches
    cot1, cot2, mask1, mask2 = coteaching(out1.logits, out2.logits, labels, forget_rate)
    terms1 = elbo_terms(x, labels, out1)
    terms2 = elbo_terms(x, labels, out2)

    per_example = cot1 + cot2
    for terms in (terms1, terms2):
        per_example += (
            beta0 * terms["reconstruction"]
            + beta1 * terms["noisy_label_ce"]
            + beta2 * terms["negative_entropy"]
            + beta3 * terms["kl_z"]
        )
    terms = {name: 0.5 * (terms1[name] + terms2[name]) for name in terms1}
    terms["coteaching"] = 0.5 * (cot1 + cot2)
    return {
        "loss": tf.nn.compute_average_loss(per_example),
        "terms": terms,
        "selections": (mask1, mask2),
    }
