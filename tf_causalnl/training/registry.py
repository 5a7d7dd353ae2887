"""Configs to models: the registries of methods and datasets, and `build_model`.

One dict maps each method name to its model class (`METHODS`); `build_model`
turns a config's `model` section into a compiled-ready model.
"""

import inspect

import keras
import ml_collections

from tf_causalnl import baselines, networks
from tf_causalnl.data import clothing1m
from tf_causalnl.models import losses
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.models.dividemix import DivideMix
from tf_causalnl.models.instancegm import InstanceGM
from tf_causalnl.models.forget_rate import AUTO
from tf_causalnl.noise import estimation
from tf_causalnl.training import distribute
from tf_causalnl.models import selection


#: One dict from method name to model class. `build_model` passes each class
#: the config values its constructor names (see `_model_kwargs`).
METHODS = {
    "ce": baselines.NoisyLabelClassifier,
    "coteaching": baselines.CoTeaching,
    "decoupling": baselines.Decoupling,
    "mentornet": baselines.MentorNet,
    "mixup": baselines.Mixup,
    "forward": baselines.Forward,
    "reweight": baselines.Reweight,
    "trevision": baselines.TRevision,
    "causalnl": CausalNL,
    "dividemix": DivideMix,
    "instancegm": InstanceGM,
}
#: DivideMix's keys: passed on only when set, so that None keeps the model's default.
_DIVISION_KEYS = ("warmup_epochs", "p_threshold", "sharpen_temperature", "mixmatch_alpha", "lambda_u",
                  "rampup_epochs", "warmup_elbo")


#: The names `train.strategy` takes (see `tf_causalnl.training.distribute`).
STRATEGIES = distribute.STRATEGIES
#: The noise type of a dataset whose training labels are noisy as published.
REAL_NOISE = "real"
#: Datasets read from image files (not held in memory), by name: their
#: training labels carry real noise, and their clean training labels are unknown.
FILE_DATASETS = {clothing1m.NAME: clothing1m.load}


def build_model(config: ml_collections.ConfigDict, input_shape, num_classes: int,
                estimate: estimation.NoiseEstimate | None = None) -> keras.Model:
    """Builds and compiles the model the config describes (call inside a strategy scope),
    its networks under `train.precision`.

    `estimate` supplies the transition matrix of Forward, Reweight and
    T-Revision, and the forget rate when the config says "auto".
    """
    method = method_class(config)
    with networks.precision(config.train.get("precision")):  # every network, and the model's own policy
        model = method(
            build_classifier(config, input_shape, num_classes),
            **_model_kwargs(config, constructor_parameters(method), estimate),
        )
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate),
                  jit_compile=bool(config.train.get("jit_compile")))
    return model


def constructor_parameters(method: type) -> set[str]:
    """The keyword names a model class takes, its base classes' included.

    A subclass that passes `**kwargs` on to its base (InstanceGM to CausalNL)
    takes the base's keywords too; reading only its own signature would
    silently leave them at their defaults.
    """
    names = set()
    for cls in method.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None and cls.__module__.startswith("tf_causalnl"):
            names |= {p.name for p in inspect.signature(init).parameters.values()
                      if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
    return names - set(getattr(method, "fixed_arguments", {}))


def method_class(config):
    if config.model.method not in METHODS:
        raise ValueError(f"Unknown method {config.model.method!r}; choose one of {sorted(METHODS)}.")
    return METHODS[config.model.method]


def build_classifier(config, input_shape, num_classes):
    """The classifier the config names, untrained (pretrained weights where it asks for them)."""
    m = config.model
    if m.classifier in networks.PRETRAINED_CLASSIFIERS:
        kwargs = {"weights": m.pretrained or None}
    elif m.pretrained:
        raise ValueError(
            f"model.pretrained={m.pretrained!r} needs a classifier with pretrained weights "
            f"({', '.join(networks.PRETRAINED_CLASSIFIERS)}), but model.classifier is "
            f'{m.classifier!r}; change the classifier or set model.pretrained="".')
    else:
        kwargs = {"stem": m.resnet_stem} if m.classifier.startswith("resnet") else {}
    return networks.build_classifier(m.classifier, input_shape, num_classes, **kwargs)


def _model_kwargs(config, parameters, estimate) -> dict:
    """The config values a method's constructor takes, by parameter name."""
    m = config.model
    forget_rate = m.forget_rate
    if forget_rate == AUTO and "forget_rate" in parameters:  # CE and the rest ignore the key
        if estimate is None:
            raise ValueError('forget_rate="auto" needs the noise estimate; see training.estimate_noise.')
        forget_rate = estimate.noise_rate
    values = {
        "z_dim": m.z_dim, "beta0": m.beta0, "beta1": m.beta1, "beta2": m.beta2, "beta3": m.beta3,
        "objective": m.get("objective") or losses.DEFAULT_OBJECTIVE,
        "reconstruction_error": m.get("reconstruction_error"),
        "reconstruction_pixels": m.get("reconstruction_pixels"),
        "detach_reconstruction": m.get("detach_reconstruction"),
        "label_gradient": m.get("label_gradient"),
        "forget_rate": forget_rate, "ramp_epochs": m.ramp_epochs,
        "selection": m.get("selection") or selection.DEFAULT_SELECTION, "temperature": m.temperature,
        "alpha": m.mixup_alpha, "vae_depth": m.vae_depth, "vae_width": m.vae_width,
        "seed": config.seed,
        **{key: m.get(key) for key in _DIVISION_KEYS if m.get(key) is not None},
        "pull": m.pull,
    }
    if "transition" in parameters:
        if estimate is None:
            raise ValueError(f"{m.method} needs an estimated transition matrix; see training.estimate_noise.")
        values["transition"] = estimate.transition.tolist()
    return {name: value for name, value in values.items() if name in parameters}
