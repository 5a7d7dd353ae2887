"""Which piece of the objective carries CausalNL's effect: the ablation at IDN-50%.

CausalNL alone on the CPU protocol of configs/fmnist_grid_cpu.py (3,000
FashionMNIST images, small CNN, half-width VAE, 12 epochs, batch 128) at
IDN-50% over seeds 0-2, once per variant. Each variant is the argument after
the colon; one work directory per variant, all on the same data and noise
per seed, so that their accuracies compare seed by seed:

    for v in default paper public_code paper_sum paper_mse paper_detach \\
             paper_x64 paper_beta1_x64 paper_x64_detach paper_sum_x64 \\
             paper_sum_x8 default_mean default_detach default_z25 \\
             default_beta1_paper; do
      python scripts/grid.py --config configs/fmnist_ablation_cpu.py:$v \\
          --workdir runs/fmnist_ablation_cpu/$v
    done

docs/RESULTS.md has the measured table. `--config configs/fmnist_ablation_cpu.py`
without an argument is the default objective.
"""

import ml_collections

from tf_causalnl.config import cpu_protocol

#: The paper's setting: Appendix B's betas and Appendix C's 25-dimensional Z.
APPENDIX_B = {"model.beta0": 0.1, "model.beta1": 0.1, "model.beta2": 1e-5, "model.beta3": 0.01,
              "model.z_dim": 25}
_PAPER = {"model.objective": "paper", **APPENDIX_B}

#: Each variant: the config keys it sets, on top of the CPU protocol's defaults.
VARIANTS = {
    # The three objectives.
    "default": {},
    "paper": _PAPER,
    "public_code": {"model.objective": "public_code", **APPENDIX_B},
    # One change each to the paper's objective.
    "paper_sum": {**_PAPER, "model.reconstruction_pixels": "sum"},
    "paper_mse": {**_PAPER, "model.reconstruction_error": "mse"},
    "paper_detach": {**_PAPER, "model.detach_reconstruction": True},
    # The public code's weights relative to co-teaching: every beta x64 (64 = the
    # kept count at forget rate 0.5, batch 128), then the noisy-label term alone.
    # (Every paper_* variant keeps Appendix B's z_dim of 25.)
    "paper_x64": {**_PAPER, "model.beta0": 6.4, "model.beta1": 6.4, "model.beta2": 6.4e-4, "model.beta3": 0.64},
    "paper_beta1_x64": {**_PAPER, "model.beta1": 6.4},
    "paper_sum_x64": {**_PAPER, "model.reconstruction_pixels": "sum", "model.beta0": 6.4, "model.beta1": 6.4,
                      "model.beta2": 6.4e-4, "model.beta3": 0.64},
    "paper_sum_x8": {**_PAPER, "model.reconstruction_pixels": "sum", "model.beta0": 0.8, "model.beta1": 0.8,
                     "model.beta2": 8e-5, "model.beta3": 0.08},
    "paper_x64_detach": {**_PAPER, "model.beta0": 6.4, "model.beta1": 6.4, "model.beta2": 6.4e-4,
                         "model.beta3": 0.64, "model.detach_reconstruction": True},
    # One change each to the default.
    "default_mean": {"model.reconstruction_pixels": "mean"},
    "default_detach": {"model.detach_reconstruction": True},
    "default_z25": {"model.z_dim": 25},
    "default_beta1_paper": {"model.beta1": 0.1, "model.beta2": 1e-5},
}


def get_config(variant: str | None = None):
    variant = variant or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown ablation variant {variant!r}; choose one of {sorted(VARIANTS)}.")
    config = cpu_protocol()
    for key, value in VARIANTS[variant].items():
        section, name = key.split(".")
        config[section][name] = value
    config.grid = ml_collections.ConfigDict()
    config.grid.methods = ("causalnl",)
    config.grid.auto_methods = ()
    config.grid.noise_types = ("idn",)
    config.grid.noise_rates = (0.5,)
    config.grid.seeds = (0, 1, 2)
    return config
