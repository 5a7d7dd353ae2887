"""The CausalNL model as a Keras user meets it: build, fit, predict, save, distribute."""

import inspect
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import CausalNL, networks, training
from tf_causalnl.config import base_config
from tf_causalnl.models import losses, selection
from tf_causalnl.models.callbacks import ForgetRateSchedule, forget_rate_at

SHAPE, CLASSES = (8, 8, 1), 3


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, CLASSES, size=n)
    return x, y


def _model(**kwargs):
    classifier = networks.build_small_cnn(SHAPE, CLASSES)
    kwargs.setdefault("forget_rate", 0.2)  # a number: the tests here are not about the estimate
    model = CausalNL(classifier, z_dim=2, **kwargs)
    # SGD: the behaviour under test does not depend on the optimizer, and
    # Keras traces Adam's update about 15 s longer for these ~130 variables.
    model.compile(optimizer="sgd")
    return model


def _weights_by_network(model):
    nets = model.classifiers + model.latent_encoders + model.decoders + model.noisy_label_decoders
    return {net.name + str(i): [w.copy() for w in net.get_weights()] for i, net in enumerate(nets)}


def test_fit_updates_all_eight_networks():
    model = _model(forget_rate=0.25)
    x, y = _data()
    before = _weights_by_network(model)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after = _weights_by_network(model)
    for name in before:
        changed = any(not np.array_equal(b, a) for b, a in zip(before[name], after[name]))
        assert changed, f"{name} was not trained"
    for key in ("loss", "reconstruction", "noisy_label_ce", "negative_entropy", "kl_z", "coteaching", "accuracy"):
        assert np.isfinite(history.history[key][0]), key


def test_predict_returns_branch_one_probabilities_and_scales_uint8():
    model = _model()
    x, _ = _data(8)
    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (8, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    expected = keras.ops.softmax(model.classifier(x.astype("float32") / 255.0, training=False))
    np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-6)


def test_keras_save_and_load_give_identical_predictions(tmp_path):
    model = _model(forget_rate=0.3, beta2=1e-3, seed=7, objective="paper", reconstruction_pixels="sum",
                   detach_reconstruction=True, label_gradient=0.5, selection="per_class")
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras warns when it cannot compile a model with a custom compile()
        loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CausalNL)
    # Compiled as saved, its optimizer's state loaded: training resumes where it stopped.
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 2
    own = lambda config: {k: v for k, v in config.items() if k != "classifier"}
    assert own(loaded.get_config()) == own(model.get_config())
    assert loaded.selection == "per_class"
    assert loaded.weighting == model.weighting == losses.Weighting(pixels="sum", detach_reconstruction=True,
                                                                      label_gradient=0.5)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_betas_default_to_the_objective_s_own():
    classifier = networks.build_small_cnn(SHAPE, CLASSES)
    assert CausalNL(classifier).betas == losses.ELBO_BETAS
    assert CausalNL(classifier, objective="paper").betas == (0.1, 0.1, 1e-5, 0.01)
    assert CausalNL(classifier, objective="public_code", beta1=2.0).betas == (0.1, 2.0, 1e-5, 0.01)
    with pytest.raises(ValueError, match="objective must be one of"):
        CausalNL(classifier, objective="appendix_b")


@pytest.mark.parametrize("detach", [False, True])
def test_detach_reconstruction_stops_the_noisy_label_gradient_at_the_decoder(detach):
    """The noisy-label term reaches p(X|Y,Z) through x1 unless x1 is detached; q(Y|X) either way."""
    model = CausalNL(networks.build_small_cnn(SHAPE, CLASSES), z_dim=2, detach_reconstruction=detach)
    x, y = _data(8)
    seeds = model._step_seeds(tf.constant(0))
    with tf.GradientTape() as tape:
        out = model.branch(0, tf.cast(x, tf.float32) / 255.0, seeds[:2], True)
        noisy_ce = tf.reduce_mean(losses.cross_entropy(out.noisy_logits, y))
    decoder, classifier = model.decoders[0].trainable_variables, model.classifier.trainable_variables
    grads = tape.gradient(noisy_ce, decoder + classifier)
    decoder_norm = sum(float(tf.norm(g)) for g in grads[:len(decoder)] if g is not None)
    classifier_norm = sum(float(tf.norm(g)) for g in grads[len(decoder):] if g is not None)
    assert (decoder_norm == 0.0) == detach
    assert classifier_norm > 0.0


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_label_gradient_scales_the_reconstruction_s_pull_on_the_classifier(share):
    """The same forward pass; the reconstruction's gradient into q(Y|X) times `share`."""
    x, _ = _data(8)
    x = tf.cast(x, tf.float32) / 255.0
    norms, reconstructions = {}, {}
    for value in (1.0, share):
        keras.utils.set_random_seed(5)
        model = CausalNL(networks.build_small_cnn(SHAPE, CLASSES), z_dim=2, label_gradient=value)
        seeds = model._step_seeds(tf.constant(0))
        with tf.GradientTape() as tape:
            out = model.branch(0, x, seeds[:2], True)
            error = tf.reduce_mean(losses.reconstruction_error(x, out.reconstruction, "l1", "sum"))
        grads = tape.gradient(error, model.classifier.trainable_variables + model.decoders[0].trainable_variables)
        split = len(model.classifier.trainable_variables)
        flat = lambda gs: tf.concat([tf.reshape(g, [-1]) for g in gs if g is not None], 0) if any(
            g is not None for g in gs) else tf.zeros([1])
        norms[value] = (flat(grads[:split]), flat(grads[split:]))
        reconstructions[value] = out.reconstruction
    np.testing.assert_allclose(reconstructions[share], reconstructions[1.0], rtol=1e-6, atol=1e-6)
    classifier_full, decoder_full = norms[1.0]
    classifier_scaled, decoder_scaled = norms[share]
    assert float(tf.norm(classifier_full)) > 0.0
    np.testing.assert_allclose(classifier_scaled, share * classifier_full, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(decoder_scaled, decoder_full, rtol=1e-5, atol=1e-7)


def test_label_gradient_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"label_gradient must be a finite number in \[0, 1\]"):
        CausalNL(networks.build_small_cnn(SHAPE, CLASSES), label_gradient=1.5)


def test_forget_rate_schedule_values():
    assert forget_rate_at(0, 0.45, 10) == 0.0
    assert forget_rate_at(3, 0.45, 10) == pytest.approx(0.15)
    assert forget_rate_at(9, 0.45, 10) == pytest.approx(0.45)
    assert forget_rate_at(30, 0.45, 10) == pytest.approx(0.45)
    assert forget_rate_at(0, 0.45, 1) == pytest.approx(0.45)


def test_fit_adds_the_forget_rate_schedule_and_logs_it():
    model = _model(forget_rate=0.4, ramp_epochs=3)
    x, y = _data()
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    np.testing.assert_allclose(history.history["forget_rate"], [0.0, 0.2, 0.4, 0.4], rtol=1e-6)


def test_clean_labels_feed_diagnostics_only():
    x, y = _data()
    flipped = (y + 1) % CLASSES
    model = _model(forget_rate=0.5, ramp_epochs=0)
    history = model.fit(x, {"noisy": y, "clean": y}, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert history.history["selection_precision"][0] == 1.0
    model = _model(forget_rate=0.5, ramp_epochs=0)
    history = model.fit(x, {"noisy": flipped, "clean": y}, batch_size=16, epochs=1, verbose=0)
    assert history.history["selection_precision"][0] == 0.0


def test_clean_labels_do_not_change_the_training():
    x, y = _data()
    noisy = np.where(np.arange(len(y)) % 3 == 0, (y + 1) % CLASSES, y)
    results = []
    for labels in (noisy, {"noisy": noisy, "clean": y}):
        keras.utils.set_random_seed(3)
        model = _model(forget_rate=0.25, ramp_epochs=0)
        model.fit(x, labels, batch_size=16, epochs=1, verbose=0, shuffle=False)
        results.append(model.classifier.get_weights())
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_evaluate_scores_branch_one_classifier_on_the_given_labels():
    model = _model()
    x, y = _data()
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    probabilities = model.predict(x, verbose=0)
    assert logs["accuracy"] == pytest.approx(np.mean(probabilities.argmax(axis=1) == y))
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    assert logs["loss"] == pytest.approx(cross_entropy, rel=1e-4)


def test_training_under_mirrored_strategy(two_cpu_strategy):
    x, y = _data(64)
    noisy = y.copy()
    noisy[:16] = (y[:16] + 1) % CLASSES  # a quarter wrong, all in the first batch's first replica
    with two_cpu_strategy.scope():
        model = _model(forget_rate=0.25, ramp_epochs=2)
    assert two_cpu_strategy.num_replicas_in_sync == 2
    before = model.classifier.get_weights()
    history = model.fit(x, {"noisy": noisy, "clean": y}, batch_size=32, epochs=2, verbose=0, shuffle=False)
    assert all(np.isfinite(v) for v in history.history["loss"])
    # Epoch 0 forgets nothing: each network selects every example, so the precision is the
    # share of right labels, 48 / 64. Epoch 1 forgets 25% of each replica's 16 examples: on
    # the replica whose 16 labels are all wrong both networks keep 12 wrong ones, elsewhere
    # only right ones, so (96 - 24) / 96 over the epoch's 2 networks x 4 replica-batches x 12.
    assert history.history["selection_precision"] == pytest.approx([0.75, 0.75])
    assert any(not np.array_equal(b, a) for b, a in zip(before, model.classifier.get_weights()))


def test_step_noise_differs_between_steps_and_replays_for_a_step():
    model = _model()
    a, b = model._step_seeds(tf.constant(5)), model._step_seeds(tf.constant(6))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, model._step_seeds(tf.constant(5)))


def test_vector_inputs_get_mlp_networks():
    classifier = networks.build_mlp_classifier((2,), 2)
    model = CausalNL(classifier, z_dim=1, forget_rate=0.2)
    model.compile(optimizer="sgd")
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    y = (x[:, 0] > 0).astype(int)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.decoders[0].output_shape == (None, 2)


def test_rejects_a_classifier_that_ends_in_softmax():
    inputs = keras.Input(SHAPE)
    outputs = keras.layers.Dense(CLASSES, activation="softmax")(keras.layers.Flatten()(inputs))
    with pytest.raises(ValueError, match="needs logits"):
        CausalNL(keras.Model(inputs, outputs))


def test_rejects_an_unbuilt_classifier():
    classifier = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    with pytest.raises(ValueError, match="not built"):
        CausalNL(classifier)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"z_dim": 0}, "z_dim must be a whole number of at least 1"),
     ({"forget_rate": 1.0}, r"forget_rate must be a number in \[0, 1\)"),
     ({"temperature": 0.0}, "temperature must be a finite number above 0")],
)
def test_rejects_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CausalNL(networks.build_small_cnn(SHAPE, CLASSES), **kwargs)


def test_rejects_sample_weights():
    model = _model()
    x, y = _data()
    with pytest.raises(ValueError, match="sample weights"):
        model.fit(x, y, sample_weight=np.ones(len(y)), batch_size=16, epochs=1, verbose=0)


def test_a_user_schedule_is_not_doubled(monkeypatch):
    # A second schedule would set the same rates, so count who sets them.
    setters = []
    original = ForgetRateSchedule.on_epoch_begin

    def counted(self, epoch, logs=None):
        setters.append((id(self), epoch))
        original(self, epoch, logs)

    monkeypatch.setattr(ForgetRateSchedule, "on_epoch_begin", counted)
    model = _model(forget_rate=0.2, ramp_epochs=2)
    x, y = _data()
    schedule = ForgetRateSchedule()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[schedule])
    assert schedule.model is model
    assert setters == [(id(schedule), 0), (id(schedule), 1)]
    np.testing.assert_allclose(history.history["forget_rate"], [0.0, 0.2], rtol=1e-6)
    setters.clear()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # without one, the model's own, once
    assert len(setters) == 1 and setters[0][0] != id(schedule)


def test_fit_passes_exactly_one_schedule_to_keras(monkeypatch):
    """The user's schedule is kept as the only one; without one, ours goes first."""
    passed = []
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, callbacks=None, **k: passed.append(callbacks))
    model = _model()
    logger = keras.callbacks.CSVLogger("unused.csv")
    mine = ForgetRateSchedule()
    model.fit(callbacks=[logger, mine])
    model.fit(callbacks=[logger])
    schedules = [[c for c in callbacks if isinstance(c, ForgetRateSchedule)] for callbacks in passed]
    assert passed[0][:2] == [logger, mine] and schedules[0] == [mine]
    assert isinstance(passed[1][0], ForgetRateSchedule) and passed[1][1] is logger and len(schedules[1]) == 1


# ---------------------------------------------------------------- the generative pull


def test_the_pull_reaches_q_only_on_the_examples_given():
    model = _model()
    x, y = _data(8)
    x = tf.constant(x, tf.float32) / 255.0
    logits = tf.constant(np.random.default_rng(1).normal(size=(8, CLASSES)), tf.float32)
    pull = tf.constant([1.0, 0.0] * 4)
    seeds = model._step_seeds(tf.constant(0))[:2]
    gradients = {}
    for name, given in (("given", pull), ("none", None)):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            out = model.branch(0, x, seeds, True, logits=logits, pull=given)
            terms = losses.elbo_terms(x, tf.constant(y), out)
            # The generative terms alone (the entropy acts on q(Y|X) directly, not through y).
            generative = tf.reduce_sum(terms["noisy_label_ce"] + terms["kl_z"]
                                       + losses.reconstruction_error(x, out.reconstruction, "l1", "sum"))
        gradients[name] = np.abs(tape.gradient(generative, logits).numpy()).sum(axis=1)
    assert np.all(gradients["given"][1::2] == 0.0)  # pull 0: none of it
    np.testing.assert_allclose(gradients["given"][0::2], gradients["none"][0::2], rtol=1e-5)  # pull 1: all
    assert np.all(gradients["none"] > 0.0)


def test_the_untrusted_pull_follows_the_peer_selection():
    model = _model(forget_rate=0.5, ramp_epochs=0, pull="untrusted")
    model.forget_rate_variable.assign(0.5)
    x, y = _data(8)
    x = tf.constant(x, tf.float32) / 255.0
    pulls = []
    original = model.branch

    def recording(index, *args, **kwargs):
        pulls.append(kwargs.get("pull", args[4] if len(args) > 4 else None))
        return original(index, *args, **kwargs)

    model.branch = recording
    model.branches(x, tf.constant(y), model._step_seeds(tf.constant(0)), True)
    logits = [c(x, training=True) for c in model.classifiers]
    _, _, mask1, mask2 = selection.coteaching(logits[0], logits[1], tf.constant(y), tf.constant(0.5))
    # Branch 1's q(Y|X) trains by CE on classifier 2's selection: it is pulled on the rest.
    np.testing.assert_array_equal(pulls[0].numpy(), 1.0 - mask2.numpy())
    np.testing.assert_array_equal(pulls[1].numpy(), 1.0 - mask1.numpy())
    assert pulls[0].numpy().sum() == 4.0  # half of the batch left out


@pytest.mark.parametrize("pull, share", [("noise", 0.3), ("none", 0.0)])
def test_the_noise_pull_is_the_forget_rate_in_force(pull, share):
    model = _model(forget_rate=0.3, ramp_epochs=0, pull=pull)
    model.forget_rate_variable.assign(0.3)
    x, y = _data(8)
    pulls = []
    original = model.branch
    model.branch = lambda index, *args, **kwargs: pulls.append(args[4]) or original(index, *args, **kwargs)
    model.branches(tf.constant(x, tf.float32) / 255.0, tf.constant(y), model._step_seeds(tf.constant(0)), True)
    for given in pulls:
        np.testing.assert_allclose(given.numpy(), np.full(8, share), rtol=1e-6)


def test_pull_trains_saves_and_is_checked():
    x, y = _data()
    model = _model(forget_rate=0.25, ramp_epochs=1, pull="untrusted")
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.get_config()["pull"] == "untrusted"
    assert CausalNL.from_config(model.get_config()).pull == "untrusted"
    with pytest.raises(ValueError, match=r"pull must be one of 'all', 'untrusted', 'noise', 'none', got 'some'"):
        _model(pull="some")


def test_the_defaults_are_for_labels_of_unknown_noise_and_the_config_has_the_same(capsys):
    model = CausalNL(networks.build_small_cnn(SHAPE, CLASSES), z_dim=2)
    assert (model.pull, model.forget_rate) == ("noise", "auto")
    model.compile(optimizer="adam")
    x, y = _data(64)
    model.fit(x, y, batch_size=16, epochs=1, verbose=2)  # as the README's example: the noise estimated first
    assert model.forget_rate == model.noise_estimate.noise_rate and 0.0 <= model.forget_rate < 1.0
    said = capsys.readouterr().out
    assert "Estimating the noise rate of the labels" in said
    assert f"Estimated noise rate {model.forget_rate:.3f}: the forget rate." in said
    model.fit(x, y, batch_size=16, epochs=1, verbose=2)  # estimated once: a second fit keeps it
    assert "Estimat" not in capsys.readouterr().out
    config = base_config()
    assert config.model.pull == inspect.signature(CausalNL).parameters["pull"].default == "noise"
    config.model.classifier, config.model.z_dim, config.model.vae_depth, config.model.vae_width = "small_cnn", 2, 1, 4
    assert training.build_model(config, SHAPE, CLASSES).pull == "noise"
    config.model.pull = "all"
    assert training.build_model(config, SHAPE, CLASSES).pull == "all"


def test_a_model_saved_before_pull_existed_loads_with_algorithm_1s():
    config = _model(pull="noise").get_config()
    del config["pull"]
    assert CausalNL.from_config(config).pull == "all"


