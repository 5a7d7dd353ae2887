"""tf_causalnl: CausalNL (Yao et al., NeurIPS 2021) as a Keras 3 model.

    from tf_causalnl import CausalNL, networks
    model = CausalNL(networks.build_small_cnn((28, 28, 1), 10), forget_rate=0.45)
    model.compile(optimizer="adam")
    model.fit(x_train, noisy_labels, epochs=10, validation_data=(x_test, y_test))

Subpackages, lowest layer first (each imports only from those before it):
`validation`, `checkpoints` and `config` (rules, files, defaults); `data`
and `noise` (arrays, pipelines, label noise); `networks`; `models` (CausalNL
and the baselines; `baselines` and `transition` are their public names);
`reports` (label issues, pictures); `training` (configs to runs);
`experiments` (grid, moons, tuning) and `export` (TF Serving).
"""

import importlib

from tf_causalnl.models.causalnl import CausalNL


__version__ = "0.1.0"
__all__ = ["CausalNL"]

#: Modules that moved into the subpackages, under the names the README has
#: always used: `from tf_causalnl import label_issues` keeps working. Loaded
#: on first use, so `import tf_causalnl` stays light.
_MOVED = {
    "callbacks": "tf_causalnl.models.callbacks",
    "causalnl": "tf_causalnl.models.causalnl",
    "clothing1m": "tf_causalnl.data.clothing1m",
    "distribute": "tf_causalnl.training.distribute",
    "distributions": "tf_causalnl.models.distributions",
    "layers": "tf_causalnl.networks.layers",
    "label_issues": "tf_causalnl.reports.label_issues",
    "losses": "tf_causalnl.models.losses",
    "moons": "tf_causalnl.experiments.moons",
    "tuning": "tf_causalnl.experiments.tuning",
}


def __getattr__(name: str):
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'tf_causalnl' has no attribute {name!r}")
