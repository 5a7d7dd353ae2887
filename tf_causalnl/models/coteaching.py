"""Co-teaching (Han et al., NeurIPS 2018): each network trains on its peer's small-loss examples."""

import keras

from tf_causalnl.models.forget_rate import ForgetRateMixin
from tf_causalnl.models.two_networks import TwoNetworks
from tf_causalnl.models.selection import coteaching


@keras.saving.register_keras_serializable(package="tf_causalnl")
class CoTeaching(ForgetRateMixin, TwoNetworks):
    """Co-teaching (Han et al., NeurIPS 2018): two networks teach each other.

    Each network ranks the batch by its own cross-entropy on the noisy labels
    and keeps the round((1 - R(T)) * batch) small-loss examples; its peer is
    trained on them (Algorithm 1, lines 4-7). R(T) rises linearly from 0 to
    `forget_rate` over `ramp_epochs` epochs (`callbacks.ForgetRateSchedule`,
    which `fit` adds). `call` returns network 1's probabilities.

    Example:
      >>> classifier = tf_causalnl.networks.build_small_cnn((28, 28, 1), 10)
      >>> model = CoTeaching(classifier, forget_rate=0.45)
      >>> model.compile(optimizer="adam")
      >>> model.fit(x_train, noisy_labels, validation_data=(x_test, y_test))

    Labels are integer class ids, or {"noisy": ..., "clean": ...}; clean labels
    only feed `clean_accuracy` and `selection_precision` (the share of
    selected examples whose noisy label is correct), never the loss. The
    logged `loss` is the sum of the two networks' losses.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax);
        network 2 is a fresh clone (`keras.models.clone_model`), so it must be
        functional or Sequential.
      forget_rate: the final forget rate tau, in [0, 1); typically the noise
        rate.
      ramp_epochs: T_k, the epochs over which the forget rate rises (10 in
        the paper).
      selection: "global" (the paper) ranks the whole batch; "per_class"
        keeps the same share of each noisy label (`models.selection.SELECTIONS`).
      seed: kept for a uniform constructor; training draws no random numbers.
    """

    def per_example_losses(self, logits1, logits2, labels):
        """Each network's cross-entropy on the examples its peer selected."""
        loss1, loss2, mask1, mask2 = coteaching(logits1, logits2, labels, self.forget_rate_variable,
                                                     self.selection)
        return loss1, loss2, (mask1, mask2)

    def get_config(self):
        return {**super().get_config(), **self._forget_rate_config()}
