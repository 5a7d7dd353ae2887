"""MentorNet with a predefined curriculum, as compared in Co-teaching (Han et al. 2018)."""

import keras

from tf_causalnl.models import baseline_losses
from tf_causalnl.models.ce import NoisyLabelClassifier
from tf_causalnl.models.forget_rate import ForgetRateMixin


@keras.saving.register_keras_serializable(package="tf_causalnl")
class MentorNet(ForgetRateMixin, NoisyLabelClassifier):
    """One network trained on the examples it finds easiest (self-paced learning).

    This is the *predefined-curriculum* MentorNet (Jiang et al., ICML 2018,
    "MentorNet-PD"), the variant Han et al. (2018, Section 4) compare
    co-teaching with; it is not the MentorNet whose curriculum is a learned
    network. Each batch, the classifier keeps the round((1 - rate) * batch)
    examples with its own smallest cross-entropy on the noisy labels and is
    trained on their mean cross-entropy. Co-teaching is this, with two
    networks exchanging their selections.

    The rate ramps from 0 to `forget_rate` over `ramp_epochs` epochs as in
    co-teaching: `fit` adds `callbacks.ForgetRateSchedule` unless one is given,
    which sets `forget_rate_variable` each epoch and logs `forget_rate`.
    `evaluate` and the `val_*` logs use plain cross-entropy on every example.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax).
      forget_rate: the final fraction of each batch left out, in [0, 1),
        typically the noise rate; or "auto" for the estimated noise rate.
      ramp_epochs: epochs over which the rate rises from 0 (10 in Han et al.).
      selection: "global" ranks the whole batch; "per_class" keeps the same
        share of each noisy label (`tf_causalnl.models.selection.SELECTIONS`).
      seed: unused (the method has no randomness); kept for a uniform API.
    """

    def per_example_loss(self, labels, probabilities, training):
        if not training:
            return super().per_example_loss(labels, probabilities, training)
        return baseline_losses.self_paced_cross_entropy(probabilities, labels, self.forget_rate_variable,
                                               self.selection)

    def get_config(self):
        return {**super().get_config(), **self._forget_rate_config()}
