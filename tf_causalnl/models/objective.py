"""CausalNL's objective for a batch: both branches' weighted negative ELBO plus co-teaching.

`causalnl_objective` is what CausalNL minimises; `generative_objective`,
its ELBO part alone, is what InstanceGM adds to DivideMix's loss. The terms
and their weightings are `losses`'; the selection is `selection`'s.
"""

from typing import Sequence
import tensorflow as tf
from tf_causalnl.models.losses import BranchOutputs, DEFAULT_OBJECTIVE, ELBO_BETAS, OBJECTIVES, Weighting, elbo_terms, reconstruction_error
from tf_causalnl.models.selection import DEFAULT_SELECTION, coteaching


def causalnl_objective(
    x: tf.Tensor,
    labels: tf.Tensor,
    branches: tuple[BranchOutputs, BranchOutputs],
    forget_rate: tf.Tensor,
    betas: Sequence[float] = ELBO_BETAS,
    weights: Weighting = OBJECTIVES[DEFAULT_OBJECTIVE],
    selection: str = DEFAULT_SELECTION,
) -> dict:
    """The loss both branches minimise, reduced for the global batch.

    Args:
      x: the input batch.
      labels: the observed (noisy) integer labels.
      branches: the outputs of branch 1 and branch 2.
      forget_rate: the current co-teaching forget rate.
      betas: (beta0, beta1, beta2, beta3), the weights of the reconstruction,
        noisy-label, entropy and KL terms.
      weights: how the terms are reduced and scaled (`Weighting`).
      selection: how co-teaching selects its small-loss examples (`SELECTIONS`).

    Returns:
      A dict with "loss", the scalar objective divided by the global batch
      size (sum over replicas gives the mean over the global batch); "terms",
      per-example unweighted terms averaged over the two branches, for
      logging; and "selections", the small-loss masks of classifiers 1 and 2.
    """
    out1, out2 = branches
    cot1, cot2, mask1, mask2 = coteaching(out1.logits, out2.logits, labels, forget_rate, selection)
    cot_scale = 1.0
    if weights.coteaching == "public_code":  # divided by the global kept count once more
        cot_scale = 1.0 / (tf.reduce_sum(mask1) * _replicas())
    objective = generative_objective(x, labels, branches, betas, weights, cot_scale * (cot1 + cot2))
    objective["terms"]["coteaching"] = 0.5 * (cot1 + cot2)
    return {**objective, "selections": (mask1, mask2)}


def generative_objective(
    x: tf.Tensor,
    labels: tf.Tensor,
    branches: tuple[BranchOutputs, BranchOutputs],
    betas: Sequence[float] = ELBO_BETAS,
    weights: Weighting = OBJECTIVES[DEFAULT_OBJECTIVE],
    per_example: tf.Tensor | float = 0.0,
) -> dict:
    """Both branches' weighted negative ELBO terms, added to `per_example`, reduced for the global batch.

    CausalNL adds them to co-teaching's losses (`causalnl_objective`),
    InstanceGM to DivideMix's. Returns {"loss", "terms"} as
    `causalnl_objective` does, without the co-teaching term.
    """
    beta0, beta1, beta2, beta3 = betas
    out1, out2 = branches
    terms1 = elbo_terms(x, labels, out1)
    terms2 = elbo_terms(x, labels, out2)
    kl_scale = 1.0
    if weights.kl == "public_code":  # summed over the global batch, without the 1/2
        kl_scale = 2.0 * _global_batch(x)
    for out, terms in ((out1, terms1), (out2, terms2)):
        per_example += (
            beta0 * reconstruction_error(x, out.reconstruction, weights.error, weights.pixels)
            + beta1 * terms["noisy_label_ce"]
            + (beta2 * terms["negative_entropy"] if weights.entropy else 0.0)
            + beta3 * kl_scale * terms["kl_z"]
        )
    terms = {name: 0.5 * (terms1[name] + terms2[name]) for name in terms1}
    return {"loss": tf.nn.compute_average_loss(per_example), "terms": terms}


def _replicas() -> float:
    return float(tf.distribute.get_strategy().num_replicas_in_sync)


def _global_batch(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.shape(x)[0], tf.float32) * _replicas()
