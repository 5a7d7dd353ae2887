"""The default configuration: every key a training config can set.

Each experiment in `configs/` starts from `base_config()` and changes what it
needs; command-line overrides such as `--config.noise.rate=0.5` apply on top.
Defaults are the paper's (Section 4.1, Appendices B and C) where it gives one.
Keys added after the first benchmark grids default to None ("unset"), so the
grid work directories made before them stay compatible (see tf_causalnl.experiments.grid).
A config may hold only the keys set here, plus the sections of the
experiments built on training (`grid`: `table_1_grid`, `moons`: `moons_config`,
`tune`: `tune_section`), which live here too so that a config file imports
no experiment module (nor keras-tuner) to be read. `training.config_checks.check_config`
refuses any other key (an unlocked ConfigDict would accept a misspelt one
silently), as well as unknown names and values out of range.
"""

import ml_collections
from ml_collections import config_dict


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "fashion_mnist"  # see data.LOADERS and training.FILE_DATASETS
    config.data.data_dir = ""  # "" = the loader's default location
    config.data.train_size = 0  # 0 = all training examples; else a seeded subset
    config.data.test_size = 0  # 0 = the whole test set; else its first test_size
    config.data.augment = True  # random crop and horizontal flip (Section 4.1)
    config.data.crop_padding = 4
    config.data.flip = True
    # Clothing1M (images read from files): images are resized to resize x resize,
    # then cropped to image_size x image_size (random crop for training, centre
    # crop for testing). None = 256 and 224, the usual sizes for Clothing1M.
    config.data.image_size = config_dict.placeholder(int)
    config.data.resize = config_dict.placeholder(int)

    config.noise = ml_collections.ConfigDict()
    # See tf_causalnl.noise.NOISE_TYPES; "real" = the dataset's own noisy labels
    # (Clothing1M), to which no synthetic noise is added.
    config.noise.type = "idn"
    config.noise.rate = 0.45
    config.noise.std = 0.1  # spread of the per-example flip rate (IDN)
    config.noise.match_rate = True  # IDN: realised mean rate = requested rate
    # IDN projects flattened pixels scaled by this; 1.0 = raw 0-255 values, as
    # the public CausalNL code does (it makes the noise nearly one-hot per image).
    config.noise.feature_scale = 1.0

    config.model = ml_collections.ConfigDict()
    config.model.method = "causalnl"  # see tf_causalnl.training.METHODS
    config.model.classifier = "resnet18"  # see tf_causalnl.networks.CLASSIFIERS
    config.model.resnet_stem = "cifar"  # or "imagenet" (the paper code's layout)
    # Weights of a pretrained classifier (networks.PRETRAINED_CLASSIFIERS):
    # "imagenet", or the path of a weights file; None or "" = random init.
    config.model.pretrained = config_dict.placeholder(str)
    config.model.z_dim = 25
    config.model.vae_width = 32  # maps of the VAE's first conv layer (Appendix C: 32)
    # Stride-2 layers of the VAE's conv networks; None = 4 below 64 pixels and
    # 5 from 64 up (Appendix C: 4 for 28-32 pixels, 5 for Clothing1M).
    config.model.vae_depth = config_dict.placeholder(int)
    # How CausalNL reduces and scales its terms (tf_causalnl.models.losses.OBJECTIVES,
    # docs/OBJECTIVE.md): None = "elbo" (the reconstruction summed over the
    # image), "paper" (Appendix B: averaged over the pixels) or "public_code"
    # (the public PyTorch code's effective weights). The betas weigh its terms;
    # None = the objective's own (losses.ELBO_BETAS = 0.1, 6.4, 6.4e-4, 0.64 for
    # "elbo"; Appendix B's 0.1, 0.1, 1e-5, 0.01 for the others). The four keys
    # after them replace one field of the objective each; None keeps its own.
    config.model.objective = config_dict.placeholder(str)
    config.model.beta0 = config_dict.placeholder(float)  # reconstruction
    config.model.beta1 = config_dict.placeholder(float)  # noisy-label likelihood
    config.model.beta2 = config_dict.placeholder(float)  # entropy of q(Y|X)
    config.model.beta3 = config_dict.placeholder(float)  # KL of q(Z|X,Y)
    config.model.reconstruction_error = config_dict.placeholder(str)  # "l1" or "mse"
    config.model.reconstruction_pixels = config_dict.placeholder(str)  # "sum" or "mean"
    config.model.detach_reconstruction = config_dict.placeholder(bool)
    config.model.label_gradient = config_dict.placeholder(float)  # in [0, 1]
    # CausalNL: on which examples the generative half trains q(Y|X)
    # (models.causalnl.PULLS; docs/OBJECTIVE.md): "noise" (every example, in
    # proportion to the forget rate: the constructor's default), "all"
    # (Algorithm 1, and every run of this library before "noise" was the
    # default: a stored config without it reads as "all"), "untrusted" (only
    # the examples co-teaching leaves out) or "none" (an ablation). InstanceGM
    # always pulls on all examples and is not given it.
    config.model.pull = "noise"
    # Co-teaching's final forget rate (CausalNL, Co-teaching, MentorNet): a
    # number, or "auto" to use the noise rate estimated from the noisy labels.
    config.model.forget_rate = config_dict.FieldReference(0.45, field_type=object)
    config.model.ramp_epochs = 10
    # How their small-loss selection ranks a batch (models.selection.SELECTIONS): None =
    # "global" (the batch's smallest losses, as in the paper) or "per_class"
    # (the same share within each noisy label).
    config.model.selection = config_dict.placeholder(str)
    config.model.temperature = 1.0  # Gumbel-softmax
    config.model.mixup_alpha = 1.0  # Mixup's Beta(alpha, alpha)
    # DivideMix and InstanceGM (models.division); None = the paper's defaults:
    # 10 warm-up epochs of CE, clean above 0.5, sharpening at T = 0.5,
    # MixMatch's Beta(4, 4), lambda_u = 25 reached over 16 epochs.
    config.model.warmup_epochs = config_dict.placeholder(int)
    config.model.p_threshold = config_dict.placeholder(float)
    config.model.sharpen_temperature = config_dict.placeholder(float)
    config.model.mixmatch_alpha = config_dict.placeholder(float)
    config.model.lambda_u = config_dict.placeholder(float)
    config.model.rampup_epochs = config_dict.placeholder(int)
    # InstanceGM: None = the ELBO trains during the warm-up too (True); False =
    # the warm-up trains the classifiers alone, as the InstanceGM paper does.
    config.model.warmup_elbo = config_dict.placeholder(bool)

    # The anchor-point estimate of the transition matrix and noise rate, made
    # from the noisy labels alone (tf_causalnl.transition) for Forward,
    # Reweight, T-Revision and forget_rate="auto": a CE classifier trained on
    # the noisy training set, keeping its best epoch on a noisy holdout.
    config.estimate = ml_collections.ConfigDict()
    config.estimate.epochs = 10
    config.estimate.holdout = 0.1
    config.estimate.percentile = 97.0
    # Classifiers whose estimates are averaged (models.estimate.estimate_noise);
    # None = 1, as every run before the key existed.
    config.estimate.members = config_dict.placeholder(int)
    # A directory where runs on the same data, noise and seed share their
    # estimate (the benchmark grid sets it); "" keeps it in the work directory.
    config.estimate.cache_dir = ""

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 150
    config.train.batch_size = 128
    config.train.eval_batch_size = 1000
    config.train.learning_rate = 1e-3  # Adam
    # "default" (one device), "mirrored" (all local devices) or "multi_worker"
    # (MultiWorkerMirroredStrategy from TF_CONFIG): see tf_causalnl.training.distribute.
    config.train.strategy = "default"
    # True: tf.config.experimental.enable_op_determinism(), so that two runs of
    # the same config give identical weights (None or False: off, faster on GPUs).
    config.train.deterministic = config_dict.placeholder(bool)
    # Keras' mixed-precision policy of every network: None or "float32",
    # "mixed_bfloat16" or "mixed_float16" (with loss scaling); the losses are
    # summed in float32 whatever it is (tf_causalnl.networks.PRECISIONS).
    config.train.precision = config_dict.placeholder(str)
    # XLA for the train step (Keras' compile(jit_compile=...)): None or False
    # off, as Keras leaves it on CPU-only machines; True for GPUs. Mixup
    # refuses it (its gamma sampler has no XLA kernel).
    config.train.jit_compile = config_dict.placeholder(bool)
    config.train.verbose = 1  # Keras progress bar; 2 = one line per epoch
    return config


def cpu_protocol() -> ml_collections.ConfigDict:
    """The CPU benchmark protocol (configs/fmnist_grid_cpu.py, docs/RESULTS.md).

    `base_config()` sized for a 2-core CPU: a seeded 3,000-image FashionMNIST
    subset, the small CNN, CausalNL's VAE at half width with a 4-dimensional
    Z (the bottleneck measured best there, docs/OBJECTIVE.md), 12 epochs with
    the forget rate ramped over 5, and 5 epochs for the noise estimate.
    """
    config = base_config()
    config.model.z_dim = 4
    config.data.train_size = 3000
    config.model.classifier = "small_cnn"
    config.model.vae_width = 16
    config.model.ramp_epochs = 5
    config.estimate.epochs = 5
    config.train.epochs = 12
    config.train.verbose = 0
    return config


def table_1_grid(seeds) -> ml_collections.ConfigDict:
    """The grid section of the paper's Table 1 (see tf_causalnl.experiments.grid): its nine
    methods in its row order, CausalNL also with forget_rate="auto", IDN at
    20/30/40/45/50%, over `seeds`."""
    grid = ml_collections.ConfigDict()
    grid.methods = ("ce", "coteaching", "decoupling", "mentornet", "mixup",
                    "forward", "reweight", "trevision", "causalnl")
    grid.auto_methods = ("causalnl",)
    grid.noise_types = ("idn",)
    grid.noise_rates = (0.2, 0.3, 0.4, 0.45, 0.5)
    grid.seeds = tuple(seeds)
    return grid


#: The argument of a config file that asks for its benchmark grid.
GRID = "grid"


def apply_variant(config: ml_collections.ConfigDict, variant: str | None) -> ml_collections.ConfigDict:
    """Applies the optional argument of a synthetic-noise experiment's config file.

    ml_collections passes what follows a colon in `--config file.py:ARG` to
    `get_config(ARG)`, so one file gives every run of a table:
      - None or "": one run at the config's noise rate (IDN-45%);
      - a noise rate such as "0.3": one run at that rate, with
        `model.forget_rate` set to it too (the paper's protocol);
      - "grid": the table's grid for scripts/grid.py (`table_1_grid`, seeds
        0-4, one line per epoch in the log).

    Returns:
      `config`, changed in place.

    Raises:
      ValueError: any other argument.
    """
    if variant in (None, ""):
        return config
    if variant == GRID:
        config.train.verbose = 2
        config.grid = table_1_grid(seeds=(0, 1, 2, 3, 4))
        return config
    try:
        rate = float(variant)
    except ValueError:
        rate = None
    if rate is None or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"Unknown config argument {variant!r}: after the colon give a noise "
            f"rate in [0, 1) such as file.py:0.3, or file.py:{GRID} for the grid."
        )
    config.noise.rate = rate
    config.model.forget_rate = rate
    return config


#: The methods of the two-moons illustration (`tf_causalnl.experiments.moons`), in its figure's order.
MOONS_METHODS = ("ce", "coteaching", "mixup", "causalnl")


def moons_config() -> ml_collections.ConfigDict:
    """The defaults of the illustration: a training config plus a `moons` section.

    MLP classifiers (two hidden layers of 64), z_dim 1, IDN-45%, Adam 1e-3.
    No augmentation: the inputs are points. Small-loss selection per class:
    with two classes and unbalanced noisy labels the paper's global rule can
    select one class only and collapse onto it (docs/RESULTS.md, "Small-loss
    selection"); the per-class rule cannot.
    """
    config = base_config()
    config.model.classifier = "mlp"
    config.model.z_dim = 1
    config.model.pull = "all"  # Algorithm 1's, with which docs/results/moons was measured
    config.model.forget_rate = 0.45
    config.model.ramp_epochs = 10
    config.model.selection = "per_class"
    config.noise.rate = 0.45
    config.data.augment = False
    config.train.epochs = 100
    config.train.batch_size = 64
    config.moons = ml_collections.ConfigDict()
    config.moons.train_size = 1000
    config.moons.test_size = 2000
    config.moons.spread = 0.1
    config.moons.seeds = (0, 1, 2, 3, 4)
    config.moons.methods = MOONS_METHODS
    return config


def tune_section() -> ml_collections.ConfigDict:
    """The `tune` section with every key and its default.

    Keys:
      algorithm: "random", "bayesian" or "hyperband" (`tuning.TUNERS`).
      max_trials: the trial budget (`--max_trials` overrides it); for
        Hyperband too, where it caps the trials of its brackets.
      validation_fraction: share of the training set held out, with its
        noisy labels, for the objective.
      clean_test: also log the clean test accuracy of each trial.
      hyperband_factor: Hyperband's reduction factor; its `max_epochs` is
        `train.epochs`.
      space: what is searched. beta0-3, z_dim and learning_rate are
        (low, high) ranges sampled on a log scale (z_dim as an integer);
        forget_rate is a tuple of choices, numbers or "auto". None keeps the
        config's value (not searched).
    """
    tune = ml_collections.ConfigDict()
    tune.algorithm = "bayesian"
    tune.max_trials = 10
    tune.validation_fraction = 0.2
    tune.clean_test = True
    tune.hyperband_factor = 3
    tune.space = ml_collections.ConfigDict()
    # Log ranges a decade either side of the default objective's betas
    # (losses.ELBO_BETAS: 0.1, 6.4, 6.4e-4, 0.64).
    tune.space.beta0 = config_range(0.01, 1.0)
    tune.space.beta1 = config_range(0.64, 64.0)
    tune.space.beta2 = config_range(6.4e-5, 6.4e-3)
    tune.space.beta3 = config_range(0.064, 6.4)
    tune.space.z_dim = config_range(1, 128)
    tune.space.learning_rate = config_range(1e-4, 1e-2)
    # "auto": the noise rate estimated from the noisy labels (transition.AUTO).
    tune.space.forget_rate = ml_collections.FieldReference((0.3, 0.45, 0.6, "auto"), field_type=object)
    return tune


def config_range(low, high) -> ml_collections.FieldReference:
    """A space entry that may also be set to None (not searched)."""
    return ml_collections.FieldReference((low, high), field_type=object)
