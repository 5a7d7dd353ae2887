"""Co-teaching's small-loss selection: which examples each network passes to its peer.

Pure functions of tensors (Han et al., NeurIPS 2018, Algorithm 1, lines 4-7):
each network ranks the batch by its own cross-entropy, keeps the
round((1 - forget_rate) * batch) smallest, globally or within each noisy
label, and its peer trains on them. CausalNL, CoTeaching and MentorNet share
them.
"""

import tensorflow as tf
from tf_causalnl.models.losses import cross_entropy


def num_to_keep(batch_size: tf.Tensor, forget_rate: tf.Tensor) -> tf.Tensor:
    """How many small-loss examples co-teaching keeps: round((1 - rate) * batch), at least 1.

    `batch_size` may be a vector of counts (one per class); an entry of 0 gives 1.
    """
    batch = tf.cast(batch_size, tf.float32)
    keep = tf.round((1.0 - tf.cast(forget_rate, tf.float32)) * batch)
    return tf.cast(tf.clip_by_value(keep, 1.0, batch), tf.int32)


#: How co-teaching picks its small-loss examples (`CausalNL(selection=...)`,
#: `config.model.selection`): "global" keeps the batch's smallest losses
#: (Han et al. 2018 and the public code); "per_class" keeps the same share
#: within each noisy label, so a network that predicts one class everywhere
#: cannot select only the examples labelled with it.
SELECTIONS = ("global", "per_class")


DEFAULT_SELECTION = "global"


def check_selection(selection: str) -> str:
    """`selection` if it is one of `SELECTIONS`; else a one-line ValueError."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}.")
    return selection


def small_loss_mask(per_example_loss: tf.Tensor, forget_rate: tf.Tensor) -> tf.Tensor:
    """A 0/1 float mask of the examples with the smallest loss (Han et al. 2018).

    Keeps `num_to_keep` examples; ties go to the earlier example. The mask
    carries no gradient: selection is a decision, not part of the objective.
    """
    per_example_loss = tf.stop_gradient(per_example_loss)
    batch = tf.shape(per_example_loss)[0]
    _, kept = tf.math.top_k(-per_example_loss, k=num_to_keep(batch, forget_rate))
    return tf.scatter_nd(kept[:, None], tf.ones_like(kept, tf.float32), [batch])


def per_class_small_loss_mask(per_example_loss: tf.Tensor, labels: tf.Tensor, forget_rate: tf.Tensor,
                              num_classes: int) -> tf.Tensor:
    """`small_loss_mask` within each noisy label: `num_to_keep` of each label's examples.

    At least one example of each label present is kept; ties go to the
    earlier example; the mask carries no gradient.
    """
    per_example_loss = tf.stop_gradient(per_example_loss)
    batch = tf.shape(per_example_loss)[0]
    labels = tf.cast(labels, tf.int32)
    # Order by label, then by loss within each label (both sorts stable).
    order = tf.argsort(per_example_loss, stable=True)
    order = tf.gather(order, tf.argsort(tf.gather(labels, order), stable=True))
    sorted_labels = tf.gather(labels, order)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(labels), labels, num_classes)
    rank_in_class = tf.range(batch) - tf.gather(tf.cumsum(counts, exclusive=True), sorted_labels)
    keep = tf.minimum(num_to_keep(counts, forget_rate), counts)  # 0 for an absent class
    kept = tf.cast(rank_in_class < tf.gather(keep, sorted_labels), tf.float32)
    return tf.scatter_nd(order[:, None], kept, [batch])


def coteaching(
    logits1: tf.Tensor, logits2: tf.Tensor, labels: tf.Tensor, forget_rate: tf.Tensor,
    selection: str = DEFAULT_SELECTION,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Co-teaching's exchange of small-loss selections (Algorithm 1, line 5).

    Each classifier ranks the batch by its own cross-entropy against the noisy
    labels (over the whole batch, or within each noisy label: `SELECTIONS`);
    each is trained on the selection of its peer.

    Returns:
      (loss1, loss2, mask1, mask2): per-example losses of classifiers 1 and 2,
      and the selections made by classifiers 1 and 2. loss1 is the
      cross-entropy of classifier 1 on the examples classifier 2 selected,
      scaled by batch / kept so that averaging it over the batch gives the mean
      over the selection (once: the public code divides by the count twice).
    """
    ce1 = cross_entropy(logits1, labels)
    ce2 = cross_entropy(logits2, labels)
    mask1 = selection_mask(ce1, labels, forget_rate, selection, logits1.shape[-1])
    mask2 = selection_mask(ce2, labels, forget_rate, selection, logits2.shape[-1])
    scale = tf.cast(tf.shape(ce1)[0], ce1.dtype) / tf.reduce_sum(mask1)
    return ce1 * mask2 * scale, ce2 * mask1 * scale, mask1, mask2


def selection_mask(per_example_loss: tf.Tensor, labels: tf.Tensor, forget_rate: tf.Tensor,
                   selection: str, num_classes: int) -> tf.Tensor:
    """The small-loss mask of one of `SELECTIONS`."""
    if check_selection(selection) == "global":
        return small_loss_mask(per_example_loss, forget_rate)
    return per_class_small_loss_mask(per_example_loss, labels, forget_rate, num_classes)
