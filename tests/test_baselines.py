"""The Section 4.1 baselines: their losses by hand, and each model as a Keras user meets it."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import networks
from tf_causalnl.baselines import NoisyLabelClassifier
from tf_causalnl.models import baseline_losses as losses
from tf_causalnl.models.loss_correction import Forward, Reweight, TRevision
from tf_causalnl.models.mentornet import MentorNet
from tf_causalnl.models.mixup import Mixup

SHAPE, CLASSES = (8, 8, 1), 3
# A 3-class symmetric-noise matrix: keep the label with 0.8, flip to each other with 0.1.
T3 = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
# The 2x2 matrix of the hand-worked examples; p = (0.9, 0.1) gives
# p @ T2 = (0.9*0.8 + 0.1*0.3, 0.9*0.2 + 0.1*0.7) = (0.75, 0.25).
T2 = [[0.8, 0.2], [0.3, 0.7]]


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, CLASSES, size=n)
    return x, y


# ---------------------------------------------------------------- losses by hand


def test_ce_loss_is_the_batch_mean_cross_entropy():
    model = NoisyLabelClassifier(networks.build_small_cnn(SHAPE, CLASSES))
    p = tf.constant([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    x = np.zeros((2, *SHAPE), np.uint8)
    # (-ln 0.5 - ln 0.8) / 2 = (0.693147 + 0.223144) / 2.
    loss = model.compute_loss(x, {"noisy": np.array([0, 1]), "clean": np.array([1, 1])}, p)
    assert float(loss) == pytest.approx(0.458145, rel=1e-5)


def test_mixup_cross_entropy_hand_values():
    p = tf.constant([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]])
    a, b = tf.constant([0, 1]), tf.constant([1, 2])
    # 0.75 * ln 2 + 0.25 * ln 4 = 1.25 ln 2;  0.75 * -ln 0.6 + 0.25 * -ln 0.2.
    expected = [1.25 * math.log(2), -0.75 * math.log(0.6) - 0.25 * math.log(0.2)]
    np.testing.assert_allclose(losses.mixup_cross_entropy(p, a, b, 0.75), expected, rtol=1e-6)
    # lam = 1 is the cross-entropy of labels_a: ln 2 and -ln 0.6.
    np.testing.assert_allclose(
        losses.mixup_cross_entropy(p, a, b, 1.0), [math.log(2), -math.log(0.6)], rtol=1e-6
    )


def test_self_paced_cross_entropy_keeps_the_smallest_and_averages_over_them():
    p = tf.constant([[0.5, 0.5], [0.8, 0.2], [0.1, 0.9], [0.4, 0.6]])
    labels = tf.constant([0, 0, 0, 0])
    # CE = (ln 2, -ln 0.8, ln 10, -ln 0.4) = (0.69, 0.22, 2.30, 0.92); rate 0.5 keeps
    # examples 1 and 0, scaled by batch / kept = 2.
    loss = losses.self_paced_cross_entropy(p, labels, tf.constant(0.5))
    np.testing.assert_allclose(loss, [2 * math.log(2), -2 * math.log(0.8), 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(tf.reduce_mean(loss), (math.log(2) - math.log(0.8)) / 2, rtol=1e-6)


def test_self_paced_cross_entropy_can_select_within_each_noisy_label():
    p = tf.constant([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.3, 0.7]])
    labels = tf.constant([0, 0, 0, 1])
    # CE = -ln of (0.9, 0.8, 0.7, 0.7). At rate 0.5 "global" keeps examples 0
    # and 1, both labelled 0; "per_class" keeps round(1.5) = 2 of label 0 (0
    # and 1) and at least one of label 1 (3): 3 kept, scaled by 4 / 3.
    ce = -np.log([0.9, 0.8, 0.7, 0.7])
    np.testing.assert_allclose(losses.self_paced_cross_entropy(p, labels, tf.constant(0.5)),
                               [2 * ce[0], 2 * ce[1], 0.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(losses.self_paced_cross_entropy(p, labels, tf.constant(0.5), "per_class"),
                               [4 / 3 * ce[0], 4 / 3 * ce[1], 0.0, 4 / 3 * ce[3]], rtol=1e-5)


def test_forward_with_identity_is_cross_entropy():
    p = tf.constant([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2]])
    labels = tf.constant([2, 1])
    # p @ I = p: -ln 0.25 = ln 4 and -ln 0.6.
    np.testing.assert_allclose(
        losses.forward_corrected_cross_entropy(p, labels, tf.eye(3)), [math.log(4), -math.log(0.6)], rtol=1e-6
    )


def test_forward_with_a_2x2_transition():
    p = tf.constant([[0.9, 0.1], [0.9, 0.1]])
    # p @ T2 = (0.75, 0.25): label 0 -> -ln 0.75, label 1 -> -ln 0.25 = ln 4.
    loss = losses.forward_corrected_cross_entropy(p, tf.constant([0, 1]), tf.constant(T2))
    np.testing.assert_allclose(loss, [-math.log(0.75), math.log(4)], rtol=1e-6)


def test_forward_floors_the_probability_inside_the_log():
    # T sends everything to class 0, so label 1 has probability 0: -ln(1e-7), not inf.
    loss = losses.forward_corrected_cross_entropy(
        tf.constant([[0.5, 0.5]]), tf.constant([1]), tf.constant([[1.0, 0.0], [1.0, 0.0]])
    )
    np.testing.assert_allclose(loss, [-math.log(1e-7)], rtol=1e-5)


def test_reweight_weights_and_loss_with_a_2x2_transition():
    p = tf.constant([[0.9, 0.1], [0.9, 0.1]])
    labels = tf.constant([0, 1])
    # beta = p[y] / (p @ T2)[y]: 0.9 / 0.75 = 1.2 and 0.1 / 0.25 = 0.4.
    np.testing.assert_allclose(losses.importance_weights(p, labels, tf.constant(T2)), [1.2, 0.4], rtol=1e-6)
    # beta * CE: 1.2 * -ln 0.9 and 0.4 * ln 10.
    np.testing.assert_allclose(
        losses.importance_reweighted_cross_entropy(p, labels, tf.constant(T2)),
        [-1.2 * math.log(0.9), 0.4 * math.log(10)],
        rtol=1e-6,
    )


def _reweighted_gradients(weight_gradient):
    """Gradients of the loss at p = softmax(ln 9, 0) = (0.9, 0.1), label 1, T2 + dT, dT = 0."""
    logits = tf.Variable([[math.log(9.0), 0.0]])
    revision = tf.Variable(tf.zeros([2, 2]))
    with tf.GradientTape() as tape:
        p = keras.activations.softmax(logits)
        loss = losses.importance_reweighted_cross_entropy(
            p, tf.constant([1]), tf.constant(T2) + revision, weight_gradient=weight_gradient
        )
    return tape.gradient(loss, [logits, revision])


def test_reweight_weight_is_a_constant():
    d_logits, d_revision = _reweighted_gradients(weight_gradient=False)
    assert d_revision is None
    # Only CE is differentiated: beta * (p - onehot) = 0.4 * (0.9, 0.1 - 1) = (0.36, -0.36).
    np.testing.assert_allclose(d_logits, [[0.36, -0.36]], rtol=1e-5)


def test_trevision_gradient_reaches_the_revision_and_not_the_classifier_through_beta():
    d_logits, d_revision = _reweighted_gradients(weight_gradient=True)
    # The classifier's gradient is Reweight's: beta * (p - onehot).
    np.testing.assert_allclose(d_logits, [[0.36, -0.36]], rtol=1e-5)
    # beta = p1 / (p @ M)[1], so d beta / d M[i, 1] = -p1 * p_i / 0.25^2 = -(1.44, 0.16);
    # times CE = ln 10. Column 0 is not in the loss.
    expected = [[0.0, -1.44 * math.log(10)], [0.0, -0.16 * math.log(10)]]
    np.testing.assert_allclose(d_revision, expected, rtol=1e-5)


# ---------------------------------------------------------------- the models

MODELS = {
    "ce": lambda c: NoisyLabelClassifier(c),
    "mixup": lambda c: Mixup(c, alpha=0.4, seed=3),
    "mentornet": lambda c: MentorNet(c, forget_rate=0.25, ramp_epochs=2),
    "forward": lambda c: Forward(c, transition=T3),
    "reweight": lambda c: Reweight(c, transition=T3),
    "trevision": lambda c: TRevision(c, transition=T3),
}


def _model(name):
    model = MODELS[name](networks.build_small_cnn(SHAPE, CLASSES))
    model.compile(optimizer="sgd")  # Fast to trace; the behaviour does not depend on it.
    return model


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fit_predict_save_and_load(name, tmp_path):
    model = _model(name)
    x, y = _data()
    before = [w.copy() for w in model.classifier.get_weights()]
    history = model.fit(x, {"noisy": y, "clean": y}, batch_size=16, epochs=2, verbose=0)
    changed = [not np.array_equal(b, a) for b, a in zip(before, model.classifier.get_weights())]
    assert any(changed), "the classifier was not trained"
    for key in ("loss", "accuracy", "clean_accuracy"):
        assert np.all(np.isfinite(history.history[key])), key

    probabilities = model.predict(x, verbose=0)
    assert probabilities.shape == (len(x), CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    own = lambda config: {k: v for k, v in config.items() if k != "classifier"}
    assert own(loaded.get_config()) == own(model.get_config())
    # Called directly: a second `predict` would trace a second graph, for nothing.
    np.testing.assert_array_equal(loaded(x), model(x))
    if name == "mentornet":
        np.testing.assert_allclose(history.history["forget_rate"], [0.0, 0.25], rtol=1e-6)
    if name == "trevision":
        revised = model.revised_transition
        assert not np.array_equal(revised, np.asarray(T3, np.float32)), "dT was not trained"
        np.testing.assert_array_equal(loaded.revised_transition, revised)


def test_mentornet_keeps_round_one_minus_rate_of_the_batch():
    model = MentorNet(networks.build_small_cnn(SHAPE, CLASSES), forget_rate=0.3)
    x, y = _data(10)
    p = model(x)
    model.forget_rate_variable.assign(0.3)
    loss = model.per_example_loss(y, p, training=True)
    assert int(np.count_nonzero(loss)) == 7  # round(0.7 * 10)
    ce = keras.losses.sparse_categorical_crossentropy(y, p).numpy()
    kept = np.sort(ce)[:7]
    np.testing.assert_allclose(np.mean(loss), np.mean(kept), rtol=1e-5)
    # Evaluation: plain cross-entropy on every example.
    np.testing.assert_allclose(model.per_example_loss(y, p, training=False), ce, rtol=1e-6)


@pytest.mark.parametrize("cls", [Forward, Reweight, TRevision])
def test_transition_models_evaluate_with_plain_cross_entropy(cls):
    model = cls(networks.build_small_cnn(SHAPE, CLASSES), transition=T3)
    x, y = _data(4)
    p = model(x)
    ce = keras.losses.sparse_categorical_crossentropy(y, p).numpy()
    np.testing.assert_allclose(model.per_example_loss(y, p, training=False), ce, rtol=1e-6)
    assert not np.allclose(model.per_example_loss(y, p, training=True), ce)


def test_mixup_draws_a_mixture_per_step_and_replays_it():
    model = Mixup(networks.build_small_cnn(SHAPE, CLASSES), alpha=1.0, seed=5)
    x, y = _data(16)
    mixed, labels_b, lam = model.mix(x, y, tf.constant(4))
    again, labels_again, lam_again = model.mix(x, y, tf.constant(4))
    np.testing.assert_array_equal(mixed, again)
    np.testing.assert_array_equal(labels_b, labels_again)
    assert 0.0 <= float(lam) <= 1.0 and float(lam) == float(lam_again)
    assert sorted(labels_b.numpy()) == sorted(y)
    assert mixed.dtype == tf.float32 and float(tf.reduce_max(mixed)) <= 1.0
    other = model.mix(x, y, tf.constant(5))
    assert float(other[2]) != float(lam)


def test_mixup_rejects_a_non_positive_alpha():
    with pytest.raises(ValueError, match="alpha must be a finite number above 0"):
        Mixup(networks.build_small_cnn(SHAPE, CLASSES), alpha=0.0)


@pytest.mark.parametrize(
    "transition, match",
    [
        ([[1.0, 0.0], [0.0, 1.0]], r"shape \(2, 2\).*needs shape \(3, 3\)"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0]], "not a matrix of numbers"),
        (np.where(np.eye(3), np.nan, 0.0), "not finite"),
        ([[1.2, -0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], r"negative entries at \[\(0, 1\)\]"),
        ([[0.8, 0.1, 0.1], [0.5, 0.5, 0.5], [0.0, 0.0, 1.0]], r"rows must sum to 1.*rows \[1\]"),
    ],
)
def test_bad_transition_matrices_are_rejected(transition, match):
    with pytest.raises(ValueError, match=match):
        Forward(networks.build_small_cnn(SHAPE, CLASSES), transition=transition)


def test_mixup_step_under_a_strategy_matches_one_device(two_cpu_strategy):
    """Identical examples make every mixture a no-op, so two replicas must take the
    same step as one device: the loss is divided by the global batch."""
    x = np.tile(np.array([[0.3, -0.7]], np.float32), (8, 1))
    y = np.full(8, 2)

    def one_step(strategy):
        with strategy.scope():
            model = Mixup(networks.build_mlp_classifier((2,), CLASSES, hidden_units=(4,)), seed=1)
            model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
        model.set_weights(start)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        return model.get_weights()

    start = Mixup(networks.build_mlp_classifier((2,), CLASSES, hidden_units=(4,))).get_weights()
    single = one_step(tf.distribute.get_strategy())
    assert any(not np.allclose(a, b) for a, b in zip(start, single))
    for a, b in zip(one_step(two_cpu_strategy), single):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
