"""Writes the `.keras` files of tests/test_saved_models.py: one per public model.

They were written at commit 7305d51, before the package moved into
subpackages, so that a test can show that models saved then still load:

    git checkout 7305d51 && python tests/data/make_saved_models.py tests/data/saved_7305d51

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
from tf_causalnl.networks import layers

SHAPE, CLASSES = (8, 8, 1), 3


def models():
    def classifier():
        x = keras.Input(SHAPE)
        h = networks.ImageNetPreprocessing()(keras.layers.Concatenate()([x, x, x]))
        h = keras.layers.Conv2D(4, 3, strides=2)(h)
        h = layers.BatchNormalization()(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        return keras.Model(x, keras.layers.Dense(CLASSES)(h))

    transition = np.full((CLASSES, CLASSES), 0.1) + 0.7 * np.eye(CLASSES)
    return {
        "causalnl": CausalNL(classifier(), z_dim=4, vae_width=4, forget_rate=0.2),
        "coteaching": baselines.CoTeaching(classifier(), forget_rate=0.2),
        "decoupling": baselines.Decoupling(classifier()),
        "mentornet": baselines.MentorNet(classifier(), forget_rate=0.2),
        "mixup": baselines.Mixup(classifier()),
        "forward": baselines.Forward(classifier(), transition=transition),
        "trevision": baselines.TRevision(classifier(), transition=transition),
        "ce": baselines.NoisyLabelClassifier(classifier()),
    }


def main(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, *SHAPE), dtype=np.uint8)
    for name, model in models().items():
        model.compile(optimizer="adam")
        model.fit(x, rng.integers(0, CLASSES, size=4), epochs=1, verbose=0)
        model.save(out / f"{name}.keras")
        np.savez(out / f"{name}.npz", x=x, probabilities=model.predict(x, verbose=0))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
