"""DivideMix's pieces as functions: the GMM split, sharpening, co-refinement, co-guessing, MixMatch.

Li, Socher and Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised
Learning", ICLR 2020, Algorithm 1. Each network's per-example losses are
split by a two-component Gaussian mixture into a probably clean (labelled)
and a probably noisy (unlabelled) part for its peer; the labelled targets
are refined with the network's own prediction, the unlabelled ones guessed
by both networks, both sharpened, and the batch is mixed (MixMatch) before
the loss. Pure functions of arrays and tensors, each tested against numbers
computed by hand (tests/test_dividemix.py); `dividemix.DivideMix` uses them.
"""

import warnings

import numpy as np
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture


def clean_probability(losses: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """P(clean | loss) of each example: the posterior of the mixture component with the smaller mean.

    The losses are scaled to [0, 1] by their minimum and maximum, then a
    two-component GMM is fitted to them as DivideMix does (10 EM iterations,
    tolerance 1e-2, 5e-4 added to the variances).

    Args:
      losses: (N,) per-example cross-entropy of a network on the noisy labels.
      seed: the GMM's initialisation (k-means) seed.

    Returns:
      (N,) float32 probabilities in [0, 1].
    """
    losses = np.asarray(losses, np.float64).reshape(-1)
    if losses.size < 2 or not np.isfinite(losses).all():
        raise ValueError(f"the GMM split needs at least 2 finite losses, got {losses.size} "
                         f"({int(np.sum(~np.isfinite(losses)))} not finite).")
    span = losses.max() - losses.min()
    scaled = (losses - losses.min()) / span if span > 0 else np.zeros_like(losses)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    with warnings.catch_warnings():
        # Ten iterations is DivideMix's cap, not a failure: without this every epoch of a run warns.
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(scaled[:, None])
    clean = int(np.argmin(gmm.means_.reshape(-1)))
    return gmm.predict_proba(scaled[:, None])[:, clean].astype(np.float32)


def sharpen(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
    """p ** (1 / T), renormalised over the classes (MixMatch's sharpening; T = 0.5 in DivideMix)."""
    powered = tf.pow(probabilities, 1.0 / temperature)
    return powered / tf.reduce_sum(powered, axis=-1, keepdims=True)


def co_refine(one_hot_labels: tf.Tensor, clean_weight: tf.Tensor, predictions: tf.Tensor,
              temperature: float) -> tf.Tensor:
    """Label co-refinement: w * y + (1 - w) * p, sharpened (Algorithm 1, lines 13-14).

    `clean_weight` (w, one per example) comes from the peer network's
    GMM; `predictions` (p) are the network's own, averaged over its views.
    """
    w = clean_weight[:, None]
    return sharpen(w * one_hot_labels + (1.0 - w) * predictions, temperature)


def co_guess(predictions_1: tf.Tensor, predictions_2: tf.Tensor, temperature: float) -> tf.Tensor:
    """Co-guessing: the two networks' average prediction, sharpened (Algorithm 1, lines 15-16)."""
    return sharpen(0.5 * (predictions_1 + predictions_2), temperature)


def mixmatch(inputs: tf.Tensor, targets: tf.Tensor, lam: tf.Tensor, permutation: tf.Tensor):
    """Mixes each example with another: lam' x + (1 - lam') x[perm], lam' = max(lam, 1 - lam).

    The same for the targets. lam' >= 0.5 keeps each mixed example closer to
    its own first part, so its row keeps the role (labelled or not) of the
    example at that position.

    Returns:
      (mixed inputs, mixed targets).
    """
    lam = tf.maximum(lam, 1.0 - lam)
    mixed_inputs = lam * inputs + (1.0 - lam) * tf.gather(inputs, permutation)
    mixed_targets = lam * targets + (1.0 - lam) * tf.gather(targets, permutation)
    return mixed_inputs, mixed_targets


def dividemix_loss(logits: tf.Tensor, targets: tf.Tensor, labelled: tf.Tensor, unlabelled_weight: tf.Tensor,
                   ) -> dict:
    """DivideMix's loss of one network on a mixed batch: L_x + lambda_u L_u + L_reg.

    Args:
      logits: (B, C) the network's logits of the mixed inputs.
      targets: (B, C) the mixed targets.
      labelled: (B,) 1.0 where the row's own example is in the labelled part.
      unlabelled_weight: lambda_u times its ramp.

    Returns:
      {"loss", "labelled", "unlabelled", "penalty"}, scalars: the labelled
      rows' cross-entropy with the soft targets (mean over those rows), the
      unlabelled rows' squared error of the probabilities (mean over rows and
      classes), and the penalty that keeps the mean prediction near uniform.
    """
    log_probabilities = tf.nn.log_softmax(logits)
    probabilities = tf.exp(log_probabilities)
    unlabelled = 1.0 - labelled
    per_row_ce = -tf.reduce_sum(targets * log_probabilities, axis=-1)
    per_row_se = tf.reduce_mean(tf.square(probabilities - targets), axis=-1)
    loss_x = tf.reduce_sum(labelled * per_row_ce) / tf.maximum(tf.reduce_sum(labelled), 1.0)
    loss_u = tf.reduce_sum(unlabelled * per_row_se) / tf.maximum(tf.reduce_sum(unlabelled), 1.0)
    num_classes = tf.cast(tf.shape(logits)[-1], tf.float32)
    prior = 1.0 / num_classes
    mean_prediction = tf.reduce_mean(probabilities, axis=0)
    penalty = tf.reduce_sum(prior * tf.math.log(prior / mean_prediction))
    return {"loss": loss_x + unlabelled_weight * loss_u + penalty,
            "labelled": loss_x, "unlabelled": loss_u, "penalty": penalty}


def linear_rampup(epoch: tf.Tensor, warmup_epochs: int, rampup_epochs: int) -> tf.Tensor:
    """lambda_u's ramp: (epoch + 1 - warm-up) / rampup_epochs, clipped to [0, 1].

    DivideMix raises it batch by batch from 0 at the end of the warm-up; here
    it moves once an epoch, to the value DivideMix reaches at that epoch's end.
    """
    if rampup_epochs <= 0:
        return tf.ones_like(tf.cast(epoch, tf.float32))
    current = (tf.cast(epoch, tf.float32) + 1.0 - float(warmup_epochs)) / float(rampup_epochs)
    return tf.clip_by_value(current, 0.0, 1.0)
