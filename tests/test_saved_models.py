"""Models saved by an earlier layout of the package still load and predict the same.

The files in tests/data/saved_7305d51 were written at commit 7305d51, when
every module sat flat in `tf_causalnl/` (tests/data/make_saved_models.py).
"""

import pathlib

import keras
import numpy as np
import pytest

import tf_causalnl  # noqa: F401  (registers the library's classes with Keras)

SAVED = pathlib.Path(__file__).parent / "data" / "saved_7305d51"
NAMES = ("causalnl", "coteaching", "decoupling", "mentornet", "mixup", "forward", "trevision", "ce")


def test_every_public_model_has_a_saved_file():
    assert sorted(p.stem for p in SAVED.glob("*.keras")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_a_model_saved_before_the_move_loads_and_predicts_as_it_did(name):
    model = keras.saving.load_model(SAVED / f"{name}.keras")
    saved = np.load(SAVED / f"{name}.npz")
    np.testing.assert_allclose(model.predict(saved["x"], verbose=0), saved["probabilities"], atol=1e-6)
