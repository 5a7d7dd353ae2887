"""Mixup (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018)."""

import keras
import tensorflow as tf

from tf_causalnl import validation
from tf_causalnl.models import baseline_losses
from tf_causalnl.models.ce import NoisyLabelClassifier
from tf_causalnl.models.wrapper import reject_sample_weight, split_labels
from tf_causalnl.data import to_float


@keras.saving.register_keras_serializable(package="tf_causalnl")
class Mixup(NoisyLabelClassifier):
    """A classifier trained on convex combinations of examples and of their labels.

    Each training batch draws one lambda ~ Beta(alpha, alpha), pairs every
    example with another of the batch (a random permutation), and trains on
    x = lambda * x_a + (1 - lambda) * x_b against
    lambda * CE(y_a) + (1 - lambda) * CE(y_b) (Zhang et al. 2018, Eq. 1 and the
    code of Fig. 1). The noisy labels are used as given.

    Randomness is stateless: lambda is a function of (seed, step), the same on
    every replica, and the permutation of (seed, step, replica); a replica
    pairs examples within its own part of the global batch. A resumed run
    replays the same mixtures.

    Logged while training: `loss`, and `accuracy` of the predictions on the
    *mixed* batch against labels_a (the labels of the un-permuted examples);
    accuracy on the un-mixed noisy batch would need a second forward pass.
    `clean_accuracy`, where clean labels are given, is likewise measured on the
    mixed batch. `evaluate` and the `val_*` logs are Keras' own: plain
    cross-entropy and accuracy of un-mixed inputs.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax).
      alpha: the Beta(alpha, alpha) parameter, > 0. The paper uses 1.0 for
        CIFAR-10 and larger values (8, 32) against corrupted labels.
      seed: seeds lambda and the pairing.
    """

    def __init__(self, classifier: keras.Model, *, alpha: float = 1.0, seed: int = 0, **kwargs):
        super().__init__(classifier, seed=seed, **kwargs)
        validation.check_number(alpha, "alpha", above=0.0, hint="it is the Beta(alpha, alpha) parameter")
        self.alpha = float(alpha)

    def compile(self, optimizer="rmsprop", jit_compile="auto", **kwargs):
        """`ClassifierWrapper.compile`; XLA is refused: its Beta(alpha, alpha) draw
        (`tf.random.stateless_gamma`) has no XLA kernel on the CPU."""
        if jit_compile is True:
            raise ValueError("Mixup cannot train under XLA (jit_compile=True): TensorFlow's stateless gamma "
                             "sampler, which draws its mixing weight, has no XLA kernel. Leave jit_compile "
                             "unset or False.")
        super().compile(optimizer=optimizer, jit_compile=False if jit_compile == "auto" else jit_compile,
                        **kwargs)

    def mix(self, x: tf.Tensor, labels: tf.Tensor, step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The mixed batch of training step `step`.

        Returns:
          (mixed inputs as floats, labels_b of the partners, lambda).
        """
        x = to_float(x)
        base = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        gamma_seeds = tf.random.experimental.stateless_split(base, num=2)
        replica = tf.distribute.get_replica_context()
        replica_id = replica.replica_id_in_sync_group if replica is not None else 0
        shuffle_seed = tf.random.experimental.stateless_fold_in(base, replica_id)

        # Beta(a, a) as g1 / (g1 + g2) with g1, g2 ~ Gamma(a) independent.
        g1 = tf.random.stateless_gamma([], gamma_seeds[0], alpha=self.alpha)
        g2 = tf.random.stateless_gamma([], gamma_seeds[1], alpha=self.alpha)
        lam = tf.math.divide_no_nan(g1, g1 + g2)
        partner = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(x)[0]), shuffle_seed)
        mixed = lam * x + (1.0 - lam) * tf.gather(x, partner)
        return mixed, tf.gather(labels, partner), lam

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        reject_sample_weight(sample_weight)
        labels_a, _ = split_labels(y)
        mixed, labels_b, lam = self.mix(x, labels_a, self.optimizer.iterations)
        with tf.GradientTape() as tape:
            probabilities = self(mixed, training=True)
            per_example = baseline_losses.mixup_cross_entropy(probabilities, labels_a, labels_b, lam)
            # Divided by the global batch inside the tape: Keras sums over replicas.
            loss = tf.nn.compute_average_loss(per_example) + self._regularization()
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        self._loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(mixed)[0])
        return self.compute_metrics(mixed, y, probabilities)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
