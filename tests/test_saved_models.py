"""Models saved by earlier commits still load and predict the same.

Each folder tests/data/saved_<commit> holds one small model per public
method as that commit saved it (tests/data/make_saved_models.py):
saved_7305d51 from when every module sat flat in `tf_causalnl/`,
saved_55e51a0 from before the models were regrouped by family (with
DivideMix and InstanceGM, which 7305d51 did not have).
"""

import pathlib
import warnings

import keras
import numpy as np
import pytest

from tf_causalnl import training

DATA = pathlib.Path(__file__).parent / "data"
FOLDERS = sorted(DATA.glob("saved_*"))
FILES = sorted(path for folder in FOLDERS for path in folder.glob("*.keras"))


def test_every_public_model_has_a_saved_file():
    assert [folder.name for folder in FOLDERS] == ["saved_55e51a0", "saved_7305d51"]
    newest = {path.stem for path in (DATA / "saved_55e51a0").glob("*.keras")}
    assert newest == set(training.METHODS)
    oldest = {path.stem for path in (DATA / "saved_7305d51").glob("*.keras")}
    assert oldest == set(training.METHODS) - {"dividemix", "instancegm"}  # added after 7305d51


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_saved_model_loads_compiled_without_warnings_and_predicts_as_it_did(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Keras' "compile() was not called as part of model loading"
        model = keras.saving.load_model(path)
    assert model.compiled and model.optimizer.built
    saved = np.load(path.with_suffix(".npz"))
    np.testing.assert_allclose(model.predict(saved["x"], verbose=0), saved["probabilities"], atol=1e-6)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_a_causalnl_saved_before_its_defaults_changed_keeps_the_settings_it_trained_with(folder):
    model = keras.saving.load_model(folder / "causalnl.keras")
    assert model.pull == "all"  # saved before `pull` existed: Algorithm 1's
    assert isinstance(model.forget_rate, float)  # as saved, not today's default "auto"
