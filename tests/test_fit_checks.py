"""fit() refuses bad input before any work, with the config path's one-line messages (tf_causalnl.validation)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import CausalNL, baselines, networks
from tf_causalnl.models.callbacks import TerminateOnNonFinite

SHAPE, CLASSES, N = (8, 8, 1), 3, 32
T3 = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]


def _data(n=N):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8), rng.integers(0, CLASSES, n)


def _with(values, index, value):
    values = np.array(values, dtype=np.result_type(values, np.asarray(value)))
    values[index] = value
    return values


X, Y = _data()
FLOATS = X / 255.0

#: Every model, as `training.METHODS` builds them.
MODELS = {
    "ce": lambda c: baselines.NoisyLabelClassifier(c),
    "coteaching": lambda c: baselines.CoTeaching(c, forget_rate=0.2),
    "decoupling": lambda c: baselines.Decoupling(c),
    "mentornet": lambda c: baselines.MentorNet(c, forget_rate=0.2),
    "mixup": lambda c: baselines.Mixup(c),
    "forward": lambda c: baselines.Forward(c, transition=T3),
    "reweight": lambda c: baselines.Reweight(c, transition=T3),
    "trevision": lambda c: baselines.TRevision(c, transition=T3),
    "causalnl": lambda c: CausalNL(c, z_dim=2, vae_width=2, forget_rate=0.2),
}


def _model(name="causalnl"):
    model = MODELS[name](networks.build_small_cnn(SHAPE, CLASSES))
    model.compile(optimizer="adam")
    return model


def _weights(model):
    return [w.copy() for w in model.get_weights()]


ARRAY_CASES = {
    "label equal to num_classes": (X, _with(Y, 5, 3), r"^y has labels outside \[0, 3\) in 1 of its 32 examples "
                                   r"\(the first is example 5, 3\); map the labels to 0..2"),
    "negative label": (X, _with(Y, 7, -1), r"^y has labels outside \[0, 3\) in 1 of its 32 examples \(the first is "
                       r"example 7, -1\)"),
    "fractional label": (X, _with(Y, 2, 0.5), r"^y has labels that are not whole numbers in 1 of its 32 examples "
                         r"\(the first is example 2, 0.5\); give integer class ids \(0..2\)"),
    "one-hot labels": (X, np.eye(CLASSES)[Y], r"^y has shape \(32, 3\), one row per example; .* np.argmax"),
    "labels of shape (N, 1)": (X, Y[:, None], r"^y has shape \(32, 1\); give a 1-D array .*reshape\(-1\)"),
    "too few labels": (X, Y[:31], r"^y has 31 labels for 32 examples; give one label per example"),
    "no labels": (X, None, r"^Training needs labels: call fit\(x, noisy_labels\)"),
    "NaN pixels": (_with(FLOATS, (3, 1, 1, 0), np.nan), Y, r"^x has NaN or infinite values in 1 of its 32 examples "
                   r"\(the first is example 3\); drop those examples"),
    "float pixels in 0-255": (X.astype("float32"), Y, r"^x has pixels outside \[0, 1\] \(they span \[0, 255\]\) in "
                              r"32 of its 32 examples \(the first is example 0\); pass uint8 images \(0-255\), or "
                              r"floats scaled to \[0, 1\] \(x / 255\)"),
    "no examples": (X[:0], Y[:0], r"^x has no examples \(shape \(0, 8, 8, 1\)\); give at least one batch"),
    "no channel axis": (X[..., 0], Y, r"^x has examples of shape \(8, 8\), but the classifier takes \(8, 8, 1\); "
                        r"add the channel axis \(x\[..., None\]\)"),
    "another image size": (np.zeros((N, 6, 6, 1), np.uint8), Y, r"^x has examples of shape \(6, 6, 1\), but the "
                           r"classifier takes \(8, 8, 1\)"),
    "int64 images": (X.astype(np.int64), Y, r"^x images have dtype int64; pass uint8 images"),
    "clean labels of another length": (X, {"noisy": Y, "clean": Y[:10]}, r'^y\["clean"\] has 10 labels for 32 '
                                       r"examples"),
    "clean labels out of range": (X, {"noisy": Y, "clean": _with(Y, 4, 9)}, r'^y\["clean"\] has labels outside '
                                  r"\[0, 3\) in 1 of its 32 examples \(the first is example 4, 9\)"),
    "a label dict without noisy": (X, {"clean": Y}, r"^y is a dict with keys \['clean'\]; a label dict holds "
                                   r"'noisy'"),
}


@pytest.mark.parametrize("case", ARRAY_CASES)
def test_bad_arrays_are_refused_before_any_work(case, tmp_path):
    # Every model runs the same checks (below); CE is the cheapest to build.
    x, y, match = ARRAY_CASES[case]
    model = _model("ce")
    before = _weights(model)
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(ValueError, match=match) as refused:
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[backup])
    assert "\n" not in str(refused.value)
    assert int(model.optimizer.iterations) == 0
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", MODELS)
def test_every_model_refuses_through_the_same_checks(name):
    model = _model(name)
    with pytest.raises(ValueError, match=r"^y has labels outside \[0, 3\) in 1 of its 32 examples"):
        model.fit(X, _with(Y, 5, 3), batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^validation_data\[0\] has pixels outside \[0, 1\]"):
        model.fit(X, Y, batch_size=16, epochs=1, verbose=0, validation_data=(X * 1.0, Y))
    assert int(model.optimizer.iterations) == 0
    if name in ("ce", "coteaching", "causalnl"):  # the three step implementations, on a bad dataset batch
        with pytest.raises(ValueError, match=r"^x has labels outside \[0, 3\) in 1 of the 8 examples of batch 1"):
            model.fit(_ds(X, _with(Y, 12, 3)), epochs=1, verbose=0)


def test_forget_rate_auto_is_not_estimated_from_refused_data():
    model = CausalNL(networks.build_small_cnn(SHAPE, CLASSES), z_dim=2, vae_width=2, forget_rate="auto")
    model.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"^y has labels outside"):
        model.fit(X, _with(Y, 0, 3), batch_size=16, epochs=1, verbose=0)
    assert model.forget_rate == "auto"


def _ds(x, y, batch=8, **kwargs):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, **kwargs)


DATASET_CASES = {
    "label equal to num_classes": (_ds(X, _with(Y, 21, 3)), r"^x has labels outside \[0, 3\) in 1 of the 8 examples "
                                   r"of batch 2 \(the first is its example 5, 3\); map the labels to 0..2"),
    "negative label": (_ds(X, _with(Y, 0, -2)), r"^x has labels outside \[0, 3\) in 1 of the 8 examples of batch 0 "
                       r"\(the first is its example 0, -2\)"),
    "fractional label": (_ds(X, _with(Y, 9, 1.5)), r"^x has labels that are not whole numbers in 1 of the 8 examples "
                         r"of batch 1 \(the first is its example 1, 1.5\)"),
    "NaN pixels": (_ds(_with(FLOATS, (12, 0, 0, 0), np.inf).astype("float32"), Y), r"^x has NaN or infinite values "
                   r"in 1 of the 8 examples of batch 1 \(the first is its example 4\)"),
    "float pixels in 0-255": (_ds(X.astype("float32"), Y), r"^x has pixels outside \[0, 1\] in 8 of the 8 examples "
                              r"of batch 0 \(the first is its example 0\); pass uint8 images"),
    "clean labels out of range": (tf.data.Dataset.from_tensor_slices((X, {"noisy": Y, "clean": _with(Y, 3, 5)}))
                                  .batch(8), r"^x \(its clean labels\) has labels outside \[0, 3\) in 1 of the 8 "
                                             r"examples of batch 0"),
    "no batches": (_ds(X, Y, batch=64, drop_remainder=True), r"^x has no batches; give a dataset with at least one"),
    "no batches, of unknown count": (_ds(X, Y).filter(lambda a, b: tf.reduce_any(b > 5)),
                                     r"^fit ran no training step: the data gave no batch"),
    "not batched": (tf.data.Dataset.from_tensor_slices((X, Y)), r"^x yields single examples of shape \(8, 8, 1\); "
                    r"batch it"),
    "sample weights": (tf.data.Dataset.from_tensor_slices((X, Y, np.ones(N))).batch(8), r"^x yields 3-tuples; .* "
                       r"without sample weights"),
    "no labels": (tf.data.Dataset.from_tensor_slices(X).batch(8), r"^x yields .*; fit needs batches of \(x, y\)"),
    "one-hot labels": (_ds(X, np.eye(CLASSES)[Y]), r"^x yields labels of .*; give one integer class id per example"),
    "string labels": (_ds(X, Y.astype(str)), r"^x yields labels of dtype string; give integer class ids"),
    "no channel axis": (_ds(X[..., 0], Y), r"^x's batch has examples of shape \(8, 8\), but the classifier takes "
                        r"\(8, 8, 1\); add the channel axis"),
}


@pytest.mark.parametrize("case", DATASET_CASES)
def test_bad_datasets_are_refused_with_one_line(case):
    dataset, match = DATASET_CASES[case]
    with pytest.raises(ValueError, match=match) as refused:
        _model("ce").fit(dataset, epochs=1, verbose=0)
    assert "\n" not in str(refused.value)


def test_a_bad_validation_dataset_is_refused_too():
    with pytest.raises(ValueError, match=r"^validation_data has labels outside \[0, 3\) in 1 of the 8 examples"):
        _model("ce").fit(_ds(X, Y), validation_data=_ds(X, _with(Y, 30, 7)), epochs=1, verbose=0)


def test_good_datasets_and_arrays_train_as_before():
    model = _model("coteaching")
    history = model.fit(_ds(X, {"noisy": Y, "clean": Y}), epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == N // 8
    assert np.isfinite(history.history["loss"][0])
    # Integer-valued float labels are class ids; float pixels in [0, 1] are images.
    model.fit(FLOATS.astype("float32"), Y.astype("float32"), batch_size=16, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == N // 8 + 2


def _diverging_model(guard=None):
    # Kernel values of 1e38 overflow the logits to infinity at the first batch.
    inputs = keras.Input(SHAPE)
    flat = keras.layers.Flatten()(inputs)
    logits = keras.layers.Dense(CLASSES, kernel_initializer=keras.initializers.Constant(1e38))(flat)
    model = baselines.NoisyLabelClassifier(keras.Model(inputs, logits))
    model.compile(optimizer="adam")
    return model


def test_divergence_stops_fit_and_names_the_term():
    with pytest.raises(FloatingPointError, match=r"^Training diverged at epoch 1, batch 1: loss = nan went "
                                                 r"non-finite first"):
        _diverging_model().fit(X, Y, batch_size=8, epochs=3, verbose=0)


def test_a_guard_of_one_s_own_returns_the_history_instead():
    guard = TerminateOnNonFinite()
    model = _diverging_model()
    history = model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[guard])
    assert guard.problem.startswith("Training diverged at epoch 1, batch 1")
    assert int(model.optimizer.iterations) == 1
    assert len(history.epoch) == 1


CONSTRUCTOR_CASES = [
    (lambda c: CausalNL(c, beta0=-1.0), r"^beta0 must be a finite number of at least 0 or None, got -1.0; a beta "
                                        r"weighs a term of the objective; 0 turns it off"),
    (lambda c: CausalNL(c, beta3=float("nan")), r"^beta3 must be a finite number of at least 0 or None, got nan"),
    (lambda c: CausalNL(c, z_dim=0), r"^z_dim must be a whole number of at least 1, got 0"),
    (lambda c: CausalNL(c, z_dim=2.5), r"^z_dim must be a whole number of at least 1, got 2.5"),
    (lambda c: CausalNL(c, temperature=0.0), r"^temperature must be a finite number above 0, got 0.0"),
    (lambda c: CausalNL(c, vae_width=0), r"^vae_width must be a whole number of at least 1, got 0"),
    (lambda c: CausalNL(c, vae_depth=0), r"^vae_depth must be a whole number of at least 1 or None, got 0"),
    (lambda c: CausalNL(c, label_gradient=-0.5), r"^label_gradient must be a finite number in \[0, 1\], got -0.5"),
    (lambda c: CausalNL(c, forget_rate=45), r'^forget_rate must be a number in \[0, 1\) or "auto", got 45'),
    (lambda c: CausalNL(c, ramp_epochs=-1), r"^ramp_epochs must be a whole number of at least 0, got -1"),
    (lambda c: baselines.CoTeaching(c, ramp_epochs=2.5), r"^ramp_epochs must be a whole number of at least 0"),
    (lambda c: baselines.MentorNet(c, forget_rate=-0.1), r"^forget_rate must be a number in \[0, 1\)"),
    (lambda c: baselines.Mixup(c, alpha=0.0), r"^alpha must be a finite number above 0, got 0.0; it is the "
                                              r"Beta\(alpha, alpha\) parameter"),
    (lambda c: baselines.TRevision(c, transition=T3, revision_scale=-1.0), r"^revision_scale must be a finite "
                                                                            r"number above 0"),
    (lambda c: baselines.Decoupling(c, min_update_fraction=2.0), r"^min_update_fraction must be a finite number in "
                                                                 r"\[0, 1\], got 2.0"),
]


@pytest.mark.parametrize("make, match", CONSTRUCTOR_CASES)
def test_constructor_arguments_out_of_range_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make(networks.build_small_cnn(SHAPE, CLASSES))
