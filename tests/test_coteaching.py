"""Co-teaching and Decoupling: selection maths, training, saving, distribution."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import networks
from tf_causalnl.models import losses, selection
from tf_causalnl.models.coteaching import CoTeaching
from tf_causalnl.models.decoupling import Decoupling, decoupling_losses, disagreement_mask

SHAPE, CLASSES = (8, 8, 1), 3


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, CLASSES, size=n)
    return x, y


def _model(cls, optimizer="sgd", **kwargs):
    model = cls(networks.build_small_cnn(SHAPE, CLASSES), **kwargs)
    model.compile(optimizer=optimizer)  # SGD: the fastest update to trace
    return model


def _trainable(model):
    return [[w.numpy().copy() for w in net.trainable_weights] for net in model.classifiers]


def _changed(before, after):
    return any(not np.array_equal(b, a) for b, a in zip(before, after))


def test_disagreement_mask_by_hand():
    logits1 = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.0, 3.0], [1.0, 2.0, 0.0]], "float32")
    logits2 = np.array([[5.0, 1.0, 0.0], [0.0, 0.2, 0.9], [3.0, 0.0, 1.0], [-1.0, 0.0, -2.0]], "float32")
    np.testing.assert_array_equal(disagreement_mask(logits1, logits2), [0.0, 1.0, 1.0, 0.0])


def test_decoupling_losses_by_hand():
    logits1 = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]], "float32")
    logits2 = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [3.0, 0.0]], "float32")
    labels = np.array([0, 0, 1, 0])
    # Disagreement on examples 0 and 2; batch 4; the mean over them is (ce0 + ce2) / 2.
    loss1, loss2, mask = decoupling_losses(logits1, logits2, labels, min_update_fraction=0.1)
    np.testing.assert_array_equal(mask, [1.0, 0.0, 1.0, 0.0])
    ce1 = [np.log(2.0), np.log(1.0 + np.exp(-1.0))]
    np.testing.assert_allclose(np.mean(loss1), np.mean(ce1), rtol=1e-6)
    np.testing.assert_allclose(np.mean(loss2), np.log(1.0 + np.exp(1.0)), rtol=1e-6)  # both cost log(1 + e)
    # A floor above |S| divides by floor * batch: here by the batch itself.
    loss1, _, _ = decoupling_losses(logits1, logits2, labels, min_update_fraction=1.0)
    np.testing.assert_allclose(np.mean(loss1), np.sum(ce1) / 4, rtol=1e-6)
    agree, _, _ = decoupling_losses(logits1, logits1, labels)
    np.testing.assert_array_equal(agree, np.zeros(4))


@pytest.mark.parametrize("cls", [CoTeaching, Decoupling])
def test_fit_trains_both_networks_predicts_and_round_trips(cls, tmp_path):
    kwargs = {"forget_rate": 0.25, "ramp_epochs": 2} if cls is CoTeaching else {}
    model = _model(cls, **kwargs)
    x, y = _data()
    noisy = np.where(np.arange(len(y)) % 4 == 0, (y + 1) % CLASSES, y)
    before = _trainable(model)
    history = model.fit(
        x, {"noisy": noisy, "clean": y}, batch_size=16, epochs=2, verbose=0, validation_data=(x, y)
    ).history
    after = _trainable(model)
    assert _changed(before[0], after[0]) and _changed(before[1], after[1])

    keys = ["loss", "accuracy", "clean_accuracy", "selection_precision", "val_loss", "val_accuracy"]
    keys += ["forget_rate"] if cls is CoTeaching else ["disagreement", "val_disagreement"]
    for key in keys:
        assert np.all(np.isfinite(history[key])), key
    if cls is CoTeaching:
        np.testing.assert_allclose(history["forget_rate"], [0.0, 0.25])

    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    expected = keras.ops.softmax(model.classifier(x.astype("float32") / 255.0, training=False))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)
    assert history["val_accuracy"][-1] == pytest.approx(np.mean(probabilities.argmax(axis=1) == y))

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is cls
    own = lambda config: {k: v for k, v in config.items() if k != "classifier"}
    assert own(loaded.get_config()) == own(model.get_config())
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), probabilities)
    for net, loaded_net in zip(model.classifiers, loaded.classifiers):
        for a, b in zip(net.get_weights(), loaded_net.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_coteaching_network_one_learns_only_from_network_two_selection():
    """Relabelling an example network 2 drops leaves network 1's update as it was.

    The example is one network 1 keeps, so a model that trained each network
    on its own selection would change network 1's update.
    """
    model = _model(CoTeaching, optimizer=keras.optimizers.SGD(1.0), forget_rate=0.5, ramp_epochs=0)
    model.forget_rate_variable.assign(0.5)
    x, y = _data(16)
    x_float = x.astype("float32") / 255.0
    logits1, logits2 = (net(x_float, training=True).numpy() for net in model.classifiers)
    mask1 = selection.small_loss_mask(losses.cross_entropy(logits1, y), 0.5).numpy()
    mask2 = selection.small_loss_mask(losses.cross_entropy(logits2, y), 0.5).numpy()
    # Give a dropped example network 2's least likely class: its loss under
    # network 2 only grows, so network 2 still drops it.
    worst = logits2.argmin(axis=1)
    candidates = np.flatnonzero((mask2 == 0) & (mask1 == 1) & (worst != y))
    assert candidates.size, "no example that network 1 keeps and network 2 drops"
    relabelled = y.copy()
    relabelled[candidates[0]] = worst[candidates[0]]

    start = [net.get_weights() for net in model.classifiers]
    results = []
    for labels in (y, relabelled):
        for net, weights in zip(model.classifiers, start):
            net.set_weights(weights)
        model.train_step((x, labels))
        results.append(_trainable(model))
    for a, b in zip(results[0][0], results[1][0]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert _changed(results[0][1], results[1][1]), "network 2 should learn from the relabelled example"


def test_decoupling_leaves_identical_networks_untouched():
    model = _model(Decoupling)
    model.classifiers[1].set_weights(model.classifiers[0].get_weights())
    x, y = _data(16)
    before = _trainable(model)
    for _ in range(2):  # eager steps: the second starts from the first's result
        logs = model.train_step((x, y))
        assert float(logs["loss"]) == 0.0 and float(logs["disagreement"]) == 0.0
    after = _trainable(model)
    assert not _changed(before[0], after[0]) and not _changed(before[1], after[1])


def test_coteaching_under_mirrored_strategy(two_cpu_strategy):
    x, y = _data()
    with two_cpu_strategy.scope():
        model = _model(CoTeaching, forget_rate=0.25, ramp_epochs=0)
    before = _trainable(model)
    history = model.fit(x, {"noisy": y, "clean": y}, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert history["selection_precision"][0] == 1.0
    after = _trainable(model)
    assert _changed(before[0], after[0]) and _changed(before[1], after[1])


@pytest.mark.parametrize("forget_rate", [1.0, -0.1])
def test_rejects_a_bad_forget_rate(forget_rate):
    with pytest.raises(ValueError, match=r"forget_rate must be a number in \[0, 1\)"):
        CoTeaching(networks.build_small_cnn(SHAPE, CLASSES), forget_rate=forget_rate)


def test_rejects_sample_weights():
    model = _model(Decoupling)
    x, y = _data(4)
    with pytest.raises(ValueError, match="sample weights"):
        model.train_step((x, y, np.ones(4, "float32")))


def test_rejects_a_classifier_that_cannot_be_cloned_into_a_different_network():
    class Subclassed(keras.Model):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, inputs):
            return self.layer(keras.ops.reshape(inputs, (-1, 64)))

    subclassed = Subclassed(keras.layers.Dense(CLASSES))
    subclassed(np.zeros((1, *SHAPE), "float32"))
    with pytest.raises(ValueError, match="clone_model"):
        Decoupling(subclassed)

    inputs = keras.Input(SHAPE)
    dense = keras.layers.Dense(CLASSES, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    seeded = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="same weights"):
        CoTeaching(seeded)


def test_auto_forget_rate_is_estimated_from_the_data_given_to_fit():
    x, y = _data(64)
    noisy = y.copy()
    noisy[:16] = (noisy[:16] + 1) % CLASSES
    for source in ("arrays", "dataset"):
        keras.utils.set_random_seed(0)
        model = _model(CoTeaching, forget_rate="auto", ramp_epochs=0)
        if source == "arrays":
            history = model.fit(x, {"noisy": noisy, "clean": y}, batch_size=16, epochs=1, verbose=0)
        else:
            batches = tf.data.Dataset.from_tensor_slices((x, noisy)).batch(16)
            history = model.fit(batches, epochs=1, verbose=0, shuffle=False)
        assert isinstance(model.forget_rate, float) and 0.0 <= model.forget_rate < 1.0
        # The estimate saw the 64 noisy labels given to fit (not the clean ones, nor a part):
        # its noisy prior is their frequencies, which differ from the clean labels'.
        assert not np.allclose(np.bincount(noisy, minlength=CLASSES), np.bincount(y, minlength=CLASSES))
        np.testing.assert_allclose(model.noise_estimate.noisy_prior, np.bincount(noisy, minlength=CLASSES) / 64)
        assert model.forget_rate == pytest.approx(model.noise_estimate.noise_rate)
        assert history.history["forget_rate"] == [pytest.approx(model.forget_rate)]
        assert model.get_config()["forget_rate"] == model.forget_rate


def test_auto_forget_rate_without_data_says_what_it_needs():
    model = _model(CoTeaching, forget_rate="auto")
    with pytest.raises(ValueError, match="estimates the noise from the data given to fit"):
        model.fit(None, epochs=1, verbose=0)
