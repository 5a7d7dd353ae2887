"""The fused BatchNormalization computes what Keras' does, and loads its weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl.networks import layers


def _pair(**kwargs):
    """Keras' layer and ours, built on (None, 5, 4, 3) with the same random weights."""
    rng = np.random.default_rng(0)
    stock = keras.layers.BatchNormalization(momentum=0.9, **kwargs)
    fused = layers.BatchNormalization(momentum=0.9, **kwargs)
    for layer in (stock, fused):
        layer.build((None, 5, 4, 3))
    weights = [rng.normal(size=w.shape).astype("float32") for w in stock.get_weights()]
    weights[3] = np.abs(weights[3]) + 0.5  # a moving variance is positive
    stock.set_weights(weights)
    fused.set_weights(weights)
    return stock, fused


@pytest.mark.parametrize("training", [True, False])
def test_outputs_gradients_and_moving_statistics_match_keras(training):
    stock, fused = _pair()
    x = tf.constant(np.random.default_rng(1).normal(2.0, 3.0, size=(6, 5, 4, 3)), tf.float32)
    results = []
    for layer in (stock, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * tf.range(3, dtype=tf.float32))  # weights channels differently
        gradients = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y, gradients, [w.numpy() for w in layer.non_trainable_weights]))
    (y0, g0, m0), (y1, g1, m1) = results
    np.testing.assert_allclose(y1, y0, atol=1e-5)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, atol=1e-4)
    for a, b in zip(m1, m0):  # the biased variance goes into the moving average, as in Keras
        np.testing.assert_allclose(a, b, rtol=1e-5)
    initial_variance = _pair()[1].moving_variance.numpy()
    assert np.allclose(m1[1], initial_variance) != training  # updated in training only


def test_what_the_fused_kernel_does_not_cover_goes_to_keras():
    fused = layers.BatchNormalization()
    vectors = tf.constant(np.random.default_rng(2).normal(size=(8, 3)), tf.float32)
    keras_result = keras.layers.BatchNormalization()(vectors, training=True)
    np.testing.assert_allclose(fused(vectors, training=True), keras_result, atol=1e-5)
    assert not layers.BatchNormalization(center=False)._fusable(tf.zeros((2, 3, 3, 1)), None)
    assert layers.BatchNormalization()._fusable(tf.zeros((2, 3, 3, 1)), None)


def test_a_model_saved_with_keras_layer_loads_into_ours(tmp_path):
    def build(norm):
        x_in = keras.Input((5, 4, 3))
        return keras.Model(x_in, norm(momentum=0.9)(keras.layers.Conv2D(2, 3)(x_in)))

    stock_model, fused_model = build(keras.layers.BatchNormalization), build(layers.BatchNormalization)
    stock_model.layers[-1].moving_mean.assign([0.5, -0.5])
    stock_model.save_weights(tmp_path / "stock.weights.h5")
    fused_model.load_weights(tmp_path / "stock.weights.h5")
    for a, b in zip(stock_model.get_weights(), fused_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    fused_model.save(tmp_path / "fused.keras")
    reloaded = keras.saving.load_model(tmp_path / "fused.keras")
    assert isinstance(reloaded.layers[-1], layers.BatchNormalization)
