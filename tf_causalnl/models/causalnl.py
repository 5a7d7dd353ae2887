"""CausalNL: a Keras model of how instance-dependent noisy labels arise.

Yao et al., "Instance-dependent Label-noise Learning under a Structural Causal
Model", NeurIPS 2021. The generative model P(Y)P(Z)P(X|Y,Z)P(Y~|Y,X) is fitted
as a VAE with two branches that teach each other (co-teaching); the inference
network q(Y|X) of branch 1 is the clean-label classifier the user keeps.
"""


import keras
import tensorflow as tf

from tf_causalnl import networks, validation
from tf_causalnl.models import distributions, losses
from tf_causalnl.models.forget_rate import ForgetRateMixin
from tf_causalnl.models.two_networks import TwoNetworks
from tf_causalnl.models.wrapper import float32, unpack_batch
from tf_causalnl.models.objective import causalnl_objective
from tf_causalnl.models.selection import DEFAULT_SELECTION, coteaching


#: The values of CausalNL's `pull`: on which examples the generative half trains q(Y|X).
PULLS = ("all", "untrusted", "noise", "none")

#: The constructor's pull: safe on clean labels, Algorithm 1's strength under heavy noise
#: (docs/RESULTS.md, "Where the generative half should pull q(Y|X)").
DEFAULT_PULL = "noise"

#: The pull of models saved, and configs stored, before `pull` existed: Algorithm 1's.
LEGACY_PULL = "all"


@keras.saving.register_keras_serializable(package="tf_causalnl")
class CausalNL(ForgetRateMixin, TwoNetworks):
    """Wraps a classifier q(Y|X) in CausalNL's two-branch causal VAE.

    `call` returns branch 1's class probabilities, so `predict`, `evaluate`
    and `export` behave like any Keras classifier; `fit` trains all eight
    networks of Algorithm 1 on (image, noisy label) pairs.

    Example:
      >>> classifier = tf_causalnl.networks.build_small_cnn((28, 28, 1), 10)
      >>> model = tf_causalnl.CausalNL(classifier)  # noise rate estimated in fit
      >>> model.compile(optimizer="adam")  # Adam, lr 1e-3 (Appendix C)
      >>> model.fit(x_train, noisy_labels, validation_data=(x_test, y_test))

    Inputs: uint8 images (scaled to [0, 1] inside the model), float images
    already in [0, 1], or float vectors. Labels: integer class ids, or a dict
    {"noisy": ..., "clean": ...} where clean training labels are known; the
    clean ones only feed diagnostics (`clean_accuracy`, `selection_precision`),
    never the loss.

    Args:
      classifier: a built Keras model from inputs to logits (no softmax). It
        becomes q(Y|X) of branch 1; branch 2 gets a fresh clone
        (`keras.models.clone_model`), so it must be functional or Sequential.
      z_dim: the dimension of Z (25 for the paper's image benchmarks).
      beta0, beta1, beta2, beta3: weights of the reconstruction, noisy-label,
        entropy and KL terms; None takes the objective's (`losses.ELBO_BETAS`
        for "elbo", Appendix B's 0.1, 0.1, 1e-5, 0.01 for the other two).
      objective: how the terms are reduced and scaled, one of
        `losses.OBJECTIVES`: "elbo" (the default: the reconstruction summed
        over the image, -log p(x|y,z)), "paper" (Appendix B as written: the
        L1 error averaged over the pixels) or "public_code" (the public
        PyTorch code's effective weights: MSE, co-teaching divided by the kept
        count again, the KL summed over the batch). See docs/OBJECTIVE.md.
      reconstruction_error, reconstruction_pixels, detach_reconstruction,
      label_gradient: replace one field of the objective's `losses.Weighting`
        ("l1" or "mse"; "sum" or "mean"; whether p(Y~|Y,X) reads
        stop_gradient(x1); the share in [0, 1] of the generative networks'
        gradient that reaches q(Y|X) through y); None keeps the objective's.
      pull: how much of the generative half's gradient through y reaches
        q(Y|X), per example, on every path (q(Z|X,Y), p(X|Y,Z), p(Y~|Y,X)),
        one of `PULLS`: "noise" (the default: every example, times the forget
        rate in force, the share of labels believed wrong: almost none on
        clean labels, more as the noise grows), "all" (Algorithm 1: all of it,
        on every example; the paper's, and this library's default until
        commit 1d1c101), "untrusted" (all of it, only on the
        examples the peer classifier does not select for co-teaching) or
        "none" (an ablation: q(Y|X) learns by co-teaching alone). The
        generative networks themselves learn from every example under each.
        See docs/OBJECTIVE.md.
      forget_rate: co-teaching's final forget rate, typically the noise rate,
        or "auto" (the default, for labels of unknown noise): `fit` first
        estimates the noise rate from its data with anchor points
        (`tf_causalnl.transition`; no clean labels) and uses it. It also sets
        the pull of "noise".
      ramp_epochs: epochs over which the forget rate rises from 0 (10 in the
        paper); see `ForgetRateSchedule`.
      selection: how co-teaching picks its small-loss examples,
        `models.selection.SELECTIONS`: "global" (the paper: the batch's smallest losses)
        or "per_class" (the same share within each noisy label).
      temperature: temperature of the Gumbel-softmax sample of Y.
      vae_depth: stride-2 layers of the image encoders and decoder; None picks
        4 below 64 pixels and 5 above (Appendix C).
      vae_width: maps of the first of those layers, doubling per layer (32
        gives Appendix C's 32/64/128/256; 16 trains much faster on a CPU:
        `scripts/benchmark.py --vae_width 16`).
      seed: seeds the Gumbel and Gaussian noise; the noise of a step is a
        function of (seed, step) and of the example's place in the global
        batch, so a resumed run replays it and one step on several devices
        draws what it draws on one.
      **kwargs: `keras.Model`'s, among them `dtype`: a mixed-precision policy
        (`networks.PRECISIONS`: "float32", "mixed_bfloat16",
        "mixed_float16") for the networks the model builds; the classifier
        must have been built under the same one. Unset, they follow Keras'
        global policy. Every loss is summed in float32 either way, and
        `compile` adds loss scaling for "mixed_float16".
    """

    def __init__(
        self,
        classifier: keras.Model,
        *,
        z_dim: int = 25,
        beta0: float | None = None,
        beta1: float | None = None,
        beta2: float | None = None,
        beta3: float | None = None,
        objective: str = losses.DEFAULT_OBJECTIVE,
        reconstruction_error: str | None = None,
        reconstruction_pixels: str | None = None,
        detach_reconstruction: bool | None = None,
        label_gradient: float | None = None,
        pull: str = DEFAULT_PULL,
        forget_rate: float | str = "auto",
        ramp_epochs: int = 10,
        selection: str = DEFAULT_SELECTION,
        temperature: float = 1.0,
        vae_depth: int | None = None,
        vae_width: int = networks.VAE_WIDTH,
        seed: int = 0,
        **kwargs,
    ):
        _check_arguments(classifier, z_dim, (beta0, beta1, beta2, beta3), temperature, vae_depth, vae_width,
                         kwargs.get("dtype"))
        super().__init__(classifier, forget_rate=forget_rate, ramp_epochs=ramp_epochs, selection=selection,
                         seed=seed, **kwargs)
        self.z_dim = int(z_dim)
        self.objective = objective
        self.weighting_overrides = {
            "error": reconstruction_error,
            "pixels": reconstruction_pixels,
            "detach_reconstruction": None if detach_reconstruction is None else bool(detach_reconstruction),
            "label_gradient": None if label_gradient is None else float(label_gradient),
        }
        self.weighting = losses.weighting(objective, **self.weighting_overrides)
        if pull not in PULLS:
            raise ValueError(f"pull must be one of {', '.join(map(repr, PULLS))}, got {pull!r}: \"all\" is "
                             "Algorithm 1's, \"untrusted\" pulls q(Y|X) only where co-teaching drops the label, "
                             "\"noise\" in proportion to the forget rate, \"none\" nowhere.")
        self.pull = pull
        given = (beta0, beta1, beta2, beta3)
        self.betas = tuple(float(own if b is None else b) for b, own in zip(given, self.weighting.betas))
        self.temperature = float(temperature)
        self.vae_depth = vae_depth
        self.vae_width = int(vae_width)

        shape = tuple(classifier.input_shape[1:])
        with networks.model_precision(kwargs.get("dtype")):
            self.latent_encoders = [
                networks.build_latent_encoder(shape, self.num_classes, z_dim, vae_depth, width=vae_width,
                                              name=f"latent_encoder_{i}")
                for i in (1, 2)
            ]
            self.decoders = [
                networks.build_decoder(shape, self.num_classes, z_dim, vae_depth, width=vae_width, name=f"decoder_{i}")
                for i in (1, 2)
            ]
            self.noisy_label_decoders = [
                networks.build_noisy_label_decoder(shape, self.num_classes, vae_depth, width=vae_width,
                                                   name=f"noisy_label_decoder_{i}")
                for i in (1, 2)
            ]
        self.term_trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("reconstruction", "noisy_label_ce", "negative_entropy", "kl_z", "coteaching")
        }
        self.built = True

    def branch(self, index: int, x: tf.Tensor, seeds: tf.Tensor, training: bool,
               logits: tf.Tensor | None = None, pull: tf.Tensor | None = None) -> losses.BranchOutputs:
        """Runs branch `index` (0 or 1) of Algorithm 1, lines 3-7.

        `seeds` holds two stateless seeds: for the Gumbel-softmax sample of Y
        and for the reparameterised sample of Z. `logits`, when given, are
        q(Y|X)'s, already computed. `pull`, when given, is each example's
        share in [0, 1] of the generative networks' gradient that reaches
        q(Y|X) through y, on every path; without it, the objective's
        `label_gradient` on the VAE's path and all of it through p(Y~|Y,X).
        """
        if logits is None:
            logits = float32(self.classifiers[index], x, training)
        y = distributions.relaxed_label_sample(logits, self.temperature, seeds[0])
        if pull is None:
            y_generative, y_noisy = _scale_gradient(y, self.weighting.label_gradient), y
        else:
            share = pull[:, None]
            y_generative = _scale_gradient(y, share * self.weighting.label_gradient)
            y_noisy = _scale_gradient(y, share)
        z_mean, z_log_variance = (tf.cast(t, tf.float32)
                                  for t in self.latent_encoders[index]([x, y_generative], training=training))
        z = distributions.latent_sample(z_mean, z_log_variance, seeds[1])
        reconstruction = float32(self.decoders[index], [z, y_generative], training)
        x1 = tf.stop_gradient(reconstruction) if self.weighting.detach_reconstruction else reconstruction
        noisy_logits = float32(self.noisy_label_decoders[index], [x1, y_noisy], training)
        return losses.BranchOutputs(logits, z_mean, z_log_variance, reconstruction, noisy_logits)

    def branches(self, x: tf.Tensor, labels: tf.Tensor, seeds: tf.Tensor, training: bool) -> tuple:
        """Both branches of a training step, with the generative pull of `self.pull`.

        For "noise" every example's share is the forget rate in force; for
        "untrusted", branch k's q(Y|X) is pulled on the examples its peer did
        not select (those it is not trained on by their noisy label).
        """
        if self.pull == "all":
            return self.branch(0, x, seeds[:2], training), self.branch(1, x, seeds[2:], training)
        logits = [float32(classifier, x, training) for classifier in self.classifiers]
        if self.pull in ("none", "noise"):
            share = 0.0 if self.pull == "none" else tf.cast(self.forget_rate_variable, tf.float32)
            pulls = (tf.zeros_like(logits[0][:, 0]) + share,) * 2
        else:
            _, _, mask1, mask2 = coteaching(logits[0], logits[1], labels, self.forget_rate_variable, self.selection)
            pulls = (1.0 - mask2, 1.0 - mask1)
        return (self.branch(0, x, seeds[:2], training, logits[0], pulls[0]),
                self.branch(1, x, seeds[2:], training, logits[1], pulls[1]))

    def train_step(self, data):
        x, labels, clean = unpack_batch(data)
        seeds = self._step_seeds(self.optimizer.iterations)
        with tf.GradientTape() as tape:
            branches = self.branches(x, labels, seeds, True)
            objective = causalnl_objective(
                x, labels, branches, self.forget_rate_variable, self.betas, self.weighting, self.selection
            )
            loss = objective["loss"] + self._regularization()
            scaled = self.optimizer.scale_loss(loss)  # mixed_float16's loss scale, else 1
        logs = self._apply_and_log(tape, scaled, loss, branches[0].logits, labels, clean, objective["terms"])
        return {**logs, **self._selection_logs(objective["selections"], labels, clean)}

    def _apply_and_log(self, tape, scaled, loss, logits, labels, clean, terms) -> dict:
        """The update from the tape, then the logs: the loss, the objective's terms, the accuracies."""
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        logs = self._update_trackers(loss, logits, labels, clean)
        for name, values in terms.items():
            self.term_trackers[name].update_state(values)
        return {"loss": logs.pop("loss"), **{name: t.result() for name, t in self.term_trackers.items()}, **logs}

    def _step_seeds(self, step: tf.Tensor) -> tf.Tensor:
        """Four stateless seeds for this step: a function of (seed, step) alone.

        Each replica takes its rows of the global batch's noise
        (`distributions.replica_rows`), so the draws do not depend on the
        number of devices either.
        """
        base = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        return tf.random.experimental.stateless_split(base, num=4)

    @classmethod
    def from_config(cls, config):
        # A model saved before `pull` existed trained with Algorithm 1's, not today's default.
        return super().from_config({"pull": LEGACY_PULL, **config})

    def get_config(self):
        return {
            **self._classifier_config(),
            "z_dim": self.z_dim,
            "beta0": self.betas[0],
            "beta1": self.betas[1],
            "beta2": self.betas[2],
            "beta3": self.betas[3],
            "objective": self.objective,
            "reconstruction_error": self.weighting_overrides["error"],
            "reconstruction_pixels": self.weighting_overrides["pixels"],
            "detach_reconstruction": self.weighting_overrides["detach_reconstruction"],
            "label_gradient": self.weighting_overrides["label_gradient"],
            "pull": self.pull,
            **self._forget_rate_config(),
            "temperature": self.temperature,
            "vae_depth": self.vae_depth,
            "vae_width": self.vae_width,
        }


def _scale_gradient(tensor: tf.Tensor, scale) -> tf.Tensor:
    """`tensor` in the forward pass; its gradient multiplied by `scale` (a number, or a
    tensor that broadcasts against it) in the backward one."""
    if isinstance(scale, float) and scale == 1.0:
        return tensor
    return scale * tensor + (1.0 - scale) * tf.stop_gradient(tensor)


def _check_arguments(classifier, z_dim, betas, temperature, vae_depth, vae_width, dtype) -> None:
    """The rules `training.config_checks.check_config` applies to the same keys under `model.`."""
    networks.check_classifier(classifier, dtype)
    validation.check_whole(z_dim, "z_dim", 1)
    for i, beta in enumerate(betas):
        validation.check_number(beta, f"beta{i}", at_least=0.0, optional=True,
                                hint="a beta weighs a term of the objective; 0 turns it off")
    validation.check_number(temperature, "temperature", above=0.0)
    validation.check_whole(vae_depth, "vae_depth", 1, optional=True)
    validation.check_whole(vae_width, "vae_width", 1)
