"""Every term of the CausalNL objective against numbers computed by hand."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl.models import losses, selection
from tf_causalnl.models.objective import causalnl_objective


def test_reconstruction_l1_is_mean_absolute_error_per_example():
    x = tf.constant([[[[0.0], [1.0]], [[1.0], [0.0]]], [[[0.2], [0.2]], [[0.2], [0.2]]]])
    rec = tf.constant([[[[0.5], [0.5]], [[0.5], [0.5]]], [[[0.2], [0.6]], [[0.2], [0.2]]]])
    # Example 1: four differences of 0.5 -> 0.5. Example 2: one of 0.4 in four -> 0.1.
    np.testing.assert_allclose(losses.reconstruction_l1(x, rec), [0.5, 0.1], rtol=1e-6)


def test_cross_entropy_hand_values():
    logits = tf.constant([[0.0, 0.0], [math.log(3.0), 0.0]])
    # Uniform over two classes: ln 2. softmax([ln 3, 0]) = [3/4, 1/4]; label 1: ln 4.
    np.testing.assert_allclose(
        losses.cross_entropy(logits, tf.constant([0, 1])), [math.log(2), math.log(4)], rtol=1e-6
    )


def test_negative_entropy_hand_values():
    logits = tf.constant([[0.0, 0.0], [math.log(3.0), 0.0]])
    expected = [
        -math.log(2),  # q = (1/2, 1/2)
        0.75 * math.log(0.75) + 0.25 * math.log(0.25),  # q = (3/4, 1/4): -0.562335
    ]
    np.testing.assert_allclose(losses.negative_entropy(logits), expected, rtol=1e-6)


def test_latent_kl_matches_closed_form():
    mean = tf.constant([[0.5, -1.0], [0.0, 0.0]])
    log_var = tf.constant([[0.2, -0.3], [0.0, 0.0]])
    # -1/2 [(1 + 0.2 - 0.25 - e^0.2) + (1 - 0.3 - 1 - e^-0.3)] = 0.6561105;
    # the standard normal itself has KL 0.
    np.testing.assert_allclose(losses.latent_kl(mean, log_var), [0.6561105, 0.0], atol=1e-6)


@pytest.mark.parametrize(
    "batch, rate, kept",
    [(128, 0.45, 70), (128, 0.0, 128), (100, 0.2, 80), (10, 0.999, 1), (4, 0.5, 2)],
)
def test_num_to_keep_rounds_and_keeps_at_least_one(batch, rate, kept):
    assert int(selection.num_to_keep(tf.constant(batch), tf.constant(rate))) == kept


def test_small_loss_mask_keeps_the_smallest_losses():
    mask = selection.small_loss_mask(tf.constant([3.0, 1.0, 2.0, 0.5]), tf.constant(0.5))
    np.testing.assert_array_equal(mask, [0.0, 1.0, 0.0, 1.0])


def test_per_class_selection_keeps_the_same_share_of_each_noisy_label():
    loss = tf.constant([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = tf.constant([0, 0, 0, 1, 1, 1])
    rate = tf.constant(1 / 3)  # keeps 4 of 6: the batch's 4 smallest, or 2 of each label
    np.testing.assert_array_equal(selection.selection_mask(loss, labels, rate, "global", 2), [1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(selection.selection_mask(loss, labels, rate, "per_class", 2), [1, 1, 0, 1, 1, 0])


def test_per_class_selection_keeps_one_of_each_present_label_and_breaks_ties_by_position():
    # Rate 0.9: 5 of label 0 round to 0 kept, 1 of label 2 too; each keeps its smallest.
    mask = selection.per_class_small_loss_mask(tf.constant([0.4, 0.1, 0.1, 0.5, 0.2, 3.0]),
                                            tf.constant([0, 0, 0, 0, 0, 2]), tf.constant(0.9), num_classes=3)
    np.testing.assert_array_equal(mask, [0, 1, 0, 0, 0, 1])


def test_an_unknown_selection_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"selection must be one of \('global', 'per_class'\), got 'balanced'"):
        selection.coteaching(_binary_logits([1.0]), _binary_logits([1.0]), tf.constant([0]), 0.5, "balanced")


def _binary_logits(margins):
    """Logits [m, 0]: with label 0 the cross-entropy is log(1 + e^-m)."""
    return tf.constant([[m, 0.0] for m in margins])


def test_coteaching_trains_each_classifier_on_its_peers_selection():
    labels = tf.constant([0, 0, 0, 0])
    margins1, margins2 = [3.0, -1.0, 2.0, 0.0], [-2.0, 1.0, 4.0, 0.5]
    ce1 = [math.log1p(math.exp(-m)) for m in margins1]
    # Classifier 1's two smallest losses: examples 0 and 2. Classifier 2's: 2 and 1.
    loss1, loss2, mask1, mask2 = selection.coteaching(
        _binary_logits(margins1), _binary_logits(margins2), labels, tf.constant(0.5)
    )
    np.testing.assert_array_equal(mask1, [1, 0, 1, 0])
    np.testing.assert_array_equal(mask2, [0, 1, 1, 0])
    # Classifier 1 is trained on examples 1 and 2; scaled by batch/kept = 2 so
    # that the batch mean is the mean over the selection (divided once).
    np.testing.assert_allclose(loss1, [0.0, 2 * ce1[1], 2 * ce1[2], 0.0], rtol=1e-6)
    np.testing.assert_allclose(tf.reduce_mean(loss1), (ce1[1] + ce1[2]) / 2, rtol=1e-6)
    ce2 = [math.log1p(math.exp(-m)) for m in margins2]
    np.testing.assert_allclose(loss2, [2 * ce2[0], 0.0, 2 * ce2[2], 0.0], rtol=1e-5)


def _branch(logit_margin, recon_value, noisy_margin):
    """A branch on a batch of two 1x1x1 images, with every output chosen by hand."""
    return losses.BranchOutputs(
        logits=_binary_logits([logit_margin] * 2),
        z_mean=tf.zeros([2, 3]),
        z_log_variance=tf.zeros([2, 3]),
        reconstruction=tf.fill([2, 1, 1, 1], recon_value),
        noisy_logits=_binary_logits([noisy_margin] * 2),
    )


def test_objective_combines_terms_with_the_betas():
    x = tf.ones([2, 1, 1, 1])
    labels = tf.constant([0, 0])
    b1, b2 = _branch(0.0, 0.5, 0.0), _branch(math.log(3.0), 0.75, math.log(3.0))
    betas = (2.0, 3.0, 5.0, 7.0)
    result = causalnl_objective(x, labels, (b1, b2), tf.constant(0.0), betas)
    # Branch 1: |1 - 0.5| = 0.5; CE ln 2; -H = -ln 2; KL 0; co-teaching ln 2.
    branch1 = 2 * 0.5 + 3 * math.log(2) - 5 * math.log(2) + math.log(2)
    # Branch 2: 0.25; CE ln(4/3); -H = 0.75 ln 0.75 + 0.25 ln 0.25; co-teaching ln(4/3).
    neg_h = 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    branch2 = 2 * 0.25 + 3 * math.log(4 / 3) + 5 * neg_h + math.log(4 / 3)
    # Every example has the same value, so the batch mean is the per-example sum.
    np.testing.assert_allclose(result["loss"], branch1 + branch2, rtol=1e-5)
    np.testing.assert_allclose(result["terms"]["reconstruction"], [0.375, 0.375], rtol=1e-6)
    np.testing.assert_allclose(
        result["terms"]["coteaching"], [0.5 * (math.log(2) + math.log(4 / 3))] * 2, rtol=1e-6
    )


def test_objective_is_scaled_for_the_global_batch_under_a_strategy(two_cpu_strategy):
    """Summed over two replicas, the loss is the mean over the global batch."""
    x = tf.ones([4, 1, 1, 1])
    labels = tf.constant([0, 0, 0, 0])
    margins = [1.0, 2.0, -1.0, 0.5]
    branch = losses.BranchOutputs(
        logits=_binary_logits(margins),
        z_mean=tf.zeros([4, 2]),
        z_log_variance=tf.zeros([4, 2]),
        reconstruction=tf.zeros([4, 1, 1, 1]),
        noisy_logits=_binary_logits(margins),
    )
    betas = (1.0, 1.0, 0.0, 0.0)
    single = causalnl_objective(x, labels, (branch, branch), tf.constant(0.0), betas)["loss"]

    def replica_loss(index):
        piece = slice(2 * index, 2 * index + 2)
        part = losses.BranchOutputs(*(t[piece] for t in branch))
        return causalnl_objective(x[piece], labels[piece], (part, part), tf.constant(0.0), betas)["loss"]

    per_replica = two_cpu_strategy.run(
        lambda: replica_loss(tf.distribute.get_replica_context().replica_id_in_sync_group)
    )
    total = two_cpu_strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    np.testing.assert_allclose(total, single, rtol=1e-6)


# ----------------------------------------------------------------------------
# The named objectives (losses.OBJECTIVES) against losses computed by hand.

_X22 = tf.constant([[[[1.0], [0.0]], [[0.5], [0.25]]]])  # one 2x2 image
_R22 = tf.constant([[[[0.5], [0.0]], [[0.0], [0.25]]]])  # errors 0.5, 0, 0.5, 0


@pytest.mark.parametrize("error, pixels, expected", [
    ("l1", "sum", 1.0), ("l1", "mean", 0.25), ("mse", "sum", 0.5), ("mse", "mean", 0.125),
])
def test_reconstruction_error_hand_values(error, pixels, expected):
    np.testing.assert_allclose(losses.reconstruction_error(_X22, _R22, error, pixels), [expected], rtol=1e-6)


def test_reconstruction_error_refuses_unknown_names():
    with pytest.raises(ValueError, match="reconstruction error must be one of"):
        losses.reconstruction_error(_X22, _R22, "l2", "sum")
    with pytest.raises(ValueError, match="pixel reduction must be one of"):
        losses.reconstruction_error(_X22, _R22, "l1", "max")


def test_named_objectives_and_overrides():
    assert losses.DEFAULT_OBJECTIVE == "elbo"
    assert losses.weighting() == losses.Weighting(pixels="sum", betas=losses.ELBO_BETAS)
    assert losses.ELBO_BETAS == (0.1, 6.4, 6.4e-4, 0.64)
    assert losses.weighting("paper").pixels == "mean"
    assert losses.weighting("paper").betas == losses.weighting("public_code").betas == (0.1, 0.1, 1e-5, 0.01)
    public = losses.weighting("public_code")
    assert (public.error, public.pixels, public.coteaching, public.kl, public.entropy) == (
        "mse", "mean", "public_code", "public_code", False)
    changed = losses.weighting("paper", pixels="sum", detach_reconstruction=True, error=None)
    assert changed == losses.Weighting(pixels="sum", detach_reconstruction=True)
    with pytest.raises(ValueError, match="objective must be one of"):
        losses.weighting("appendix_b")
    with pytest.raises(ValueError, match="objective kl must be one of"):
        losses.Weighting(kl="sum")


def _image_branch(batch, logit_margins, z_mean, noisy_margin):
    """A branch on `batch` copies of the 2x2 image, reconstructed as _R22."""
    return losses.BranchOutputs(
        logits=_binary_logits(logit_margins),
        z_mean=tf.constant(z_mean),
        z_log_variance=tf.zeros([batch, 1]),
        reconstruction=tf.repeat(_R22, batch, axis=0),
        noisy_logits=_binary_logits([noisy_margin] * batch),
    )


def _hand_objective(objective):
    """Two identical branches on two examples, forget rate 0.5, KL 1/2 * mu^2 per example."""
    x, labels = tf.repeat(_X22, 2, axis=0), tf.constant([0, 0])
    branch = _image_branch(2, [0.0, math.log(3.0)], [[1.0], [2.0]], 0.0)
    betas = (2.0, 3.0, 5.0, 7.0)
    return causalnl_objective(
        x, labels, (branch, branch), tf.constant(0.5), betas, losses.weighting(objective))


def test_paper_objective_averages_the_reconstruction_over_pixels():
    # Per example and branch: 2 * 0.25 (L1 / d) + 3 ln 2 + 5 (-H) + 7 * mu^2 / 2.
    neg_h = [-math.log(2), 0.75 * math.log(0.75) + 0.25 * math.log(0.25)]
    kl = [0.5, 2.0]
    elbo = [2 * 0.25 + 3 * math.log(2) + 5 * h + 7 * k for h, k in zip(neg_h, kl)]
    # Co-teaching keeps one example each (ce ln 4/3 < ln 2: example 1); scaled by 2/1.
    cot = [0.0, 2 * math.log(4 / 3)]
    expected = np.mean([2 * e + 2 * c for e, c in zip(elbo, cot)])
    np.testing.assert_allclose(_hand_objective("paper")["loss"], expected, rtol=1e-5)


def test_elbo_objective_sums_the_reconstruction_over_pixels():
    # As "paper", with the reconstruction 2 * 1.0 (summed over the 4 pixels) in place of 2 * 0.25.
    difference = 2 * 2 * (1.0 - 0.25)  # two branches
    paper, elbo = _hand_objective("paper")["loss"], _hand_objective("elbo")["loss"]
    np.testing.assert_allclose(elbo - paper, difference, rtol=1e-5)
    # The logged term stays the L1 error per pixel under every objective.
    np.testing.assert_allclose(_hand_objective("elbo")["terms"]["reconstruction"], [0.25, 0.25], rtol=1e-6)


def test_public_code_objective_is_its_effective_loss():
    # Per example and branch: 2 * MSE 0.125 + 3 ln 2 + no entropy + 7 * 2 * (batch 2) * mu^2 / 2,
    # i.e. beta3 times the batch's sum of -(1 + log var - mu^2 - var) = mu^2 summed.
    kl_sum_batch = 1.0 + 4.0  # sum over the batch of mu^2
    elbo = [2 * 0.125 + 3 * math.log(2) + 7 * kl_sum_batch] * 2
    # Co-teaching: the mean over the one kept example, divided by the kept count (1) again.
    cot = [0.0, 2 * math.log(4 / 3) / 1]
    expected = np.mean([2 * e + 2 * c for e, c in zip(elbo, cot)])
    np.testing.assert_allclose(_hand_objective("public_code")["loss"], expected, rtol=1e-5)


def test_public_code_divides_coteaching_by_the_kept_count():
    x, labels = tf.repeat(_X22, 4, axis=0), tf.constant([0, 0, 0, 0])
    branch = _image_branch(4, [1.0, 2.0, -1.0, 0.5], [[0.0]] * 4, 0.0)
    betas = (0.0, 0.0, 0.0, 0.0)
    paper = causalnl_objective(x, labels, (branch, branch), tf.constant(0.5), betas,
                                      losses.weighting("paper"))["loss"]
    public = causalnl_objective(x, labels, (branch, branch), tf.constant(0.5), betas,
                                       losses.weighting("public_code"))["loss"]
    np.testing.assert_allclose(public, paper / 2, rtol=1e-6)  # 2 of 4 kept


@pytest.mark.parametrize("objective", sorted(losses.OBJECTIVES))
def test_every_objective_is_scaled_for_the_global_batch(two_cpu_strategy, objective):
    """Summed over two replicas, each objective equals its one-device value on the global batch."""
    x, labels = tf.repeat(_X22, 4, axis=0), tf.constant([0, 0, 0, 0])
    branch = _image_branch(4, [1.0, 2.0, -1.0, 0.5], [[1.0], [0.5], [-1.0], [2.0]], 0.3)
    betas = (2.0, 3.0, 5.0, 7.0)
    weights = losses.weighting(objective)
    single = causalnl_objective(x, labels, (branch, branch), tf.constant(0.0), betas, weights)["loss"]

    def replica_loss(index):
        piece = slice(2 * index, 2 * index + 2)
        part = losses.BranchOutputs(*(t[piece] for t in branch))
        return causalnl_objective(
            x[piece], labels[piece], (part, part), tf.constant(0.0), betas, weights)["loss"]

    per_replica = two_cpu_strategy.run(
        lambda: replica_loss(tf.distribute.get_replica_context().replica_id_in_sync_group)
    )
    total = two_cpu_strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    np.testing.assert_allclose(total, single, rtol=1e-5)
