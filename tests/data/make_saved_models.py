"""Writes the `.keras` files of tests/test_saved_models.py: one per public model.

Each folder `saved_<commit>` holds the models as that commit saved them, so
that a test shows they still load and predict as they did then:

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old python tests/data/make_saved_models.py tests/data/saved_<commit> [NAME ...]

(the names default to every model the commit has). saved_7305d51 was
written before the package moved into subpackages (`reweight` added later
from the same commit); saved_55e51a0 holds all eleven methods, DivideMix and
InstanceGM among them, before the models were regrouped by family.

A classifier of a few hundred weights (8x8 grey images, 3 classes) keeps
the files small; it holds the library's own layers (`ImageNetPreprocessing`,
the fused `BatchNormalization`) so that their saved names are covered too.
Each file has a `<name>.npz` beside it with inputs and the probabilities the
model gave for them when it was saved.
"""

import pathlib
import sys

import keras
import numpy as np

from tf_causalnl import CausalNL, baselines, networks

try:
    from tf_causalnl.networks import layers
except ImportError:  # before the subpackages (7305d51): a flat module
    from tf_causalnl import layers

SHAPE, CLASSES = (8, 8, 1), 3


def models() -> dict:
    """name -> a function that builds the model, for every model this commit has."""
    def classifier():
        x = keras.Input(SHAPE)
        h = networks.ImageNetPreprocessing()(keras.layers.Concatenate()([x, x, x]))
        h = keras.layers.Conv2D(4, 3, strides=2)(h)
        h = layers.BatchNormalization()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(x, keras.layers.Dense(CLASSES)(h))

    transition = np.full((CLASSES, CLASSES), 0.1) + 0.7 * np.eye(CLASSES)
    built = {
        "causalnl": lambda: CausalNL(classifier(), z_dim=4, vae_width=4, forget_rate=0.2),
        "coteaching": lambda: baselines.CoTeaching(classifier(), forget_rate=0.2),
        "decoupling": lambda: baselines.Decoupling(classifier()),
        "mentornet": lambda: baselines.MentorNet(classifier(), forget_rate=0.2),
        "mixup": lambda: baselines.Mixup(classifier()),
        "forward": lambda: baselines.Forward(classifier(), transition=transition),
        "reweight": lambda: baselines.Reweight(classifier(), transition=transition),
        "trevision": lambda: baselines.TRevision(classifier(), transition=transition),
        "ce": lambda: baselines.NoisyLabelClassifier(classifier()),
    }
    if hasattr(baselines, "DivideMix"):  # from issue 16 on
        from tf_causalnl import models as tf_models  # noqa: PLC0415

        built["dividemix"] = lambda: baselines.DivideMix(classifier(), warmup_epochs=1, rampup_epochs=1)
        built["instancegm"] = lambda: tf_models.InstanceGM(classifier(), z_dim=4, vae_width=4,
                                                           warmup_epochs=1, rampup_epochs=1)
    return built


def main(out: pathlib.Path, names) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, *SHAPE), dtype=np.uint8)
    for name, build in models().items():
        labels = rng.integers(0, CLASSES, size=4)
        if names and name not in names:
            continue
        model = build()
        model.compile(optimizer="adam")
        model.fit(x, labels, epochs=1, verbose=0)
        model.save(out / f"{name}.keras")
        np.savez(out / f"{name}.npz", x=x, probabilities=model.predict(x, verbose=0))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), sys.argv[2:])
