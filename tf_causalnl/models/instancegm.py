"""InstanceGM (Garg et al., WACV 2023): CausalNL's generative model with DivideMix in place of co-teaching."""

import keras
import tensorflow as tf

from tf_causalnl.data import to_float
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.models.division import INDEX, DivideMixTraining
from tf_causalnl.models.forget_rate import ForgetRateMixin
from tf_causalnl.models.wrapper import reject_sample_weight, split_labels
from tf_causalnl.models.objective import generative_objective


@keras.saving.register_keras_serializable(package="tf_causalnl")
class InstanceGM(DivideMixTraining, CausalNL):
    """CausalNL whose two classifiers q(Y|X) are trained by DivideMix, not by co-teaching.

    Every step minimises CausalNL's negative ELBO over every example of the
    batch, both branches (the reconstruction, noisy-label, entropy and KL
    terms of `models.objective.generative_objective`), plus the DivideMix loss of the
    two classifiers (`models.division`: a warm-up of cross-entropy, then
    each network trains on its peer's GMM split of the data, with refined
    and guessed targets, mixed). This is the recipe of "Instance-Dependent
    Noisy Label Learning via Graphical Modelling" (Garg, Nguyen, Felix, Do
    and Carneiro, WACV 2023). `call` returns branch 1's probabilities, as
    CausalNL's does; `selection_precision` is the share of DivideMix's
    labelled rows whose noisy label is right.

    Args:
      classifier: as for `CausalNL`.
      warmup_epochs, p_threshold, sharpen_temperature, mixmatch_alpha, lambda_u,
        rampup_epochs: DivideMix's, as for `DivideMix`.
      warmup_elbo: whether the ELBO trains during DivideMix's warm-up
        (True), or only the classifiers' cross-entropy does, as in the
        paper's Figure 2 and its public code (False): the generative model
        then starts with the split. The warm-up's steps still run the VAE,
        weighted 0.
      **kwargs: `CausalNL`'s (z_dim, the betas, the objective, vae_width,
        seed, dtype, ...). Its co-teaching arguments (forget_rate,
        ramp_epochs, selection) are kept in the config but not used; its
        `pull` is always "all" (`fixed_arguments`).
    """

    #: CausalNL's keywords that InstanceGM fixes: a config's value is not passed to it
    #: (training.registry.constructor_parameters leaves them out).
    fixed_arguments = {"pull": "all"}

    def __init__(self, classifier: keras.Model, *, warmup_epochs: int = 10, p_threshold: float = 0.5,
                 sharpen_temperature: float = 0.5, mixmatch_alpha: float = 4.0, lambda_u: float = 25.0,
                 rampup_epochs: int = 16, warmup_elbo: bool = True, **kwargs):
        if kwargs.setdefault("pull", self.fixed_arguments["pull"]) != self.fixed_arguments["pull"]:
            raise ValueError(f"InstanceGM pulls q(Y|X) on every example (pull=\"all\"), got pull="
                             f"{kwargs['pull']!r}: DivideMix's split, not co-teaching's, says which labels it trusts.")
        kwargs.setdefault("forget_rate", 0.2)  # unused here: a number, as before, not CausalNL's "auto"
        super().__init__(classifier, **kwargs)
        if not isinstance(warmup_elbo, bool):
            raise ValueError(f"warmup_elbo must be True or False, got {warmup_elbo!r}.")
        self.warmup_elbo = warmup_elbo
        # No co-teaching term here: DivideMix's terms take its place.
        self.term_trackers = {name: t for name, t in self.term_trackers.items() if name != "coteaching"}
        self.division_trackers = self._init_division(warmup_epochs, p_threshold, sharpen_temperature,
                                                     mixmatch_alpha, lambda_u, rampup_epochs)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.term_trackers.values(), *self.division_trackers.values(),
                self.accuracy_tracker, self.clean_accuracy_tracker, self.selection_precision_tracker]

    def _fit_callbacks(self, x, y, callbacks: list, verbose="auto") -> list:
        """CausalNL's, without co-teaching's: no "auto" forget rate resolved, no schedule run or logged."""
        return super(ForgetRateMixin, self)._fit_callbacks(x, y, callbacks, verbose)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        reject_sample_weight(sample_weight)
        labels, clean = split_labels(y)
        x = to_float(x)
        step = self.optimizer.iterations
        seeds = self._step_seeds(step)
        with tf.GradientTape() as tape:
            branches = (self.branch(0, x, seeds[:2], True), self.branch(1, x, seeds[2:], True))
            generative = generative_objective(x, labels, branches, self.betas, self.weighting)
            division, division_terms, masks = self._warmup_or_dividemix_loss(
                x, labels, y[INDEX], [b.logits for b in branches], self._mix_seeds(step))
            if self.warmup_elbo:
                generative_weight = 1.0
            else:  # 0 during the warm-up: its steps train the classifiers alone
                generative_weight = tf.cast(self.epoch_variable >= float(self.warmup_epochs), tf.float32)
            loss = generative_weight * generative["loss"] + division + self._regularization()
            scaled = self.optimizer.scale_loss(loss)  # mixed_float16's loss scale, else 1
        logs = self._apply_and_log(tape, scaled, loss, branches[0].logits, labels, clean, generative["terms"])
        return {**logs, **self._log_division(division_terms, self.division_trackers),
                **self._selection_logs(masks, labels, clean)}

    def get_config(self):
        return {**super().get_config(), **self._division_config(), "warmup_elbo": self.warmup_elbo}
