"""Mixed precision and XLA: every model trains under Keras' 16-bit policies (losses in float32), and with jit_compile."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import CausalNL, baselines, networks, training
from tf_causalnl import transition as tf_transition
from tf_causalnl.config import base_config
from tf_causalnl.training import config_checks

EAGER_WARNING = "ignore:Even though the `tf.config.experimental_run_functions_eagerly`"
COMPUTE = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def _config(method, precision):
    config = base_config()
    config.model.method = method
    config.model.classifier = "small_cnn"
    config.model.z_dim = 2
    config.model.vae_depth = 1
    config.model.vae_width = 4
    config.model.forget_rate = 0.3
    config.model.ramp_epochs = 1
    config.train.precision = precision
    return config


def _cases():
    every = [(m, "mixed_bfloat16") for m in sorted(training.METHODS)]
    # float16: CausalNL's own step (the baselines' steps apply the loss scale the same way, or are Keras').
    return every + [("causalnl", "mixed_float16")]


@pytest.mark.parametrize("method, precision", _cases())
@pytest.mark.filterwarnings(EAGER_WARNING)
def test_every_model_trains_in_16_bits_with_float32_losses(method, precision, eager, monkeypatch):
    differentiated = []  # the dtype of every loss a gradient is taken of (steps run eagerly)
    gradient = tf.GradientTape.gradient

    def recording(tape, target, *args, **kwargs):
        differentiated.extend(t.dtype for t in tf.nest.flatten(target))
        return gradient(tape, target, *args, **kwargs)

    monkeypatch.setattr(tf.GradientTape, "gradient", recording)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=32)
    t = np.eye(3) * 0.8 + 0.2 / 3
    transition = tf_transition.NoiseEstimate(t, np.full(3, 1 / 3), np.full(3, 1 / 3), 0.2)
    model = training.build_model(_config(method, precision), (8, 8, 1), 3, transition)
    assert keras.config.dtype_policy().name == "float32"  # the build left the global policy as it was
    assert model.classifier.layers[-1].compute_dtype == COMPUTE[precision]
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    before = [v.numpy().copy() for v in model.classifier.trainable_variables]
    # float16's dynamic loss scale starts at 2**15 and halves on each step whose
    # gradients overflow, skipping it: give it steps to settle.
    epochs = 8 if precision == "mixed_float16" else 1
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert differentiated and set(differentiated) == {tf.float32}, differentiated
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, model.classifier.trainable_variables))
    probabilities = model.predict(x, verbose=0)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_an_unknown_precision_is_refused_with_the_choices():
    config = _config("ce", "bfloat16")
    config.data.name = "fashion_mnist"
    with pytest.raises(ValueError, match=r"Unknown precision 'bfloat16'; choose one of .*mixed_bfloat16"):
        config_checks.check_config(config)
    with pytest.raises(ValueError, match="precision must be one of"):
        with networks.precision("half"):
            pass


def test_the_precision_scope_restores_the_policy_even_on_error():
    with pytest.raises(RuntimeError):
        with networks.precision("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError
    assert keras.config.dtype_policy().name == "float32"
    layer = keras.layers.Dense(2)
    assert layer(tf.ones((1, 2))).dtype == tf.float32


@pytest.mark.parametrize("method", ["causalnl"])
def test_jit_compile_reaches_the_model_and_trains(method):
    config = _config(method, None)
    config.train.jit_compile = True
    model = training.build_model(config, (8, 8, 1), 3)
    assert model.jit_compile
    rng = np.random.default_rng(0)
    history = model.fit(rng.integers(0, 256, size=(32, 8, 8, 1), dtype=np.uint8), rng.integers(0, 3, size=32),
                        batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert not training.build_model(_config(method, None), (8, 8, 1), 3).jit_compile  # off by default


def test_mixup_refuses_xla_with_the_reason():
    config = _config("mixup", None)
    config.train.jit_compile = True
    with pytest.raises(ValueError, match="Mixup cannot train under XLA"):
        training.build_model(config, (8, 8, 1), 3)


def _small_cnn():
    return networks.build_small_cnn((8, 8, 1), 3)


def test_the_dtype_argument_builds_causalnls_networks_under_it_and_survives_saving(tmp_path):
    with networks.precision("mixed_bfloat16"):
        classifier = _small_cnn()
    model = CausalNL(classifier, z_dim=2, vae_depth=1, vae_width=4, forget_rate=0.3, ramp_epochs=1,
                     dtype="mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # no global state was touched
    networks_built = [*model.classifiers, *model.latent_encoders, *model.decoders, *model.noisy_label_decoders]
    assert [n.layers[-1].compute_dtype for n in networks_built] == ["bfloat16"] * 8
    # (Training in 16 bits is test_every_model_trains_in_16_bits_with_float32_losses's.)
    x = np.random.default_rng(0).integers(0, 256, size=(8, 8, 8, 1), dtype=np.uint8)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    assert loaded.decoders[0].layers[-1].compute_dtype == "bfloat16"
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_a_float32_model_saved_and_loaded_under_a_16_bit_global_policy_stays_float32(tmp_path):
    model = CausalNL(_small_cnn(), z_dim=2, vae_depth=1, vae_width=4, forget_rate=0.2)
    path = str(tmp_path / "model.keras")
    model.save(path)
    with networks.precision("mixed_bfloat16"):
        loaded = keras.saving.load_model(path)
    assert loaded.decoders[0].layers[-1].compute_dtype == "float32"


def test_a_dtype_the_classifier_was_not_built_under_is_refused_with_the_fix():
    for method in (CausalNL, baselines.CoTeaching, baselines.NoisyLabelClassifier):
        with pytest.raises(ValueError, match=r"dtype='mixed_bfloat16', but the classifier was built under "
                                             r"'float32': build it under the same policy"):
            method(_small_cnn(), dtype="mixed_bfloat16")
    with pytest.raises(ValueError, match=r"dtype must be one of .* got 'half'"):
        baselines.NoisyLabelClassifier(_small_cnn(), dtype="half")


def test_dtype_mixed_float16_gets_loss_scaling_for_the_baselines_too():
    with networks.precision("mixed_float16"):
        classifier = _small_cnn()
    model = baselines.CoTeaching(classifier, forget_rate=0.2, dtype="mixed_float16")
    assert model.classifiers[1].layers[-1].compute_dtype == "float16"
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
