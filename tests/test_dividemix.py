"""DivideMix and InstanceGM: each piece against numbers computed by hand, then short fits."""

import csv
import json
import signal
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from tf_causalnl import data, networks, training
from tf_causalnl.export import predict, serving
from tf_causalnl.models import dividemix_losses as dm
from tf_causalnl.models.dividemix import DivideMix
from tf_causalnl.models.instancegm import InstanceGM
from tf_causalnl.training import config_checks

import train_job as job  # tests/ has no __init__.py: pytest's prepend import mode puts it on sys.path

SHAPE, CLASSES = (8, 8, 1), 3


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *SHAPE), dtype=np.uint8), rng.integers(0, CLASSES, size=n)


# ---------------------------------------------------------------- the pieces


def test_the_gmm_split_finds_the_small_loss_cluster():
    rng = np.random.default_rng(0)
    small, large = 0.1 + 0.01 * rng.standard_normal(60), 2.0 + 0.1 * rng.standard_normal(40)
    w = dm.clean_probability(np.concatenate([small, large]))
    assert w.dtype == np.float32 and w.shape == (100,)
    assert np.all(w[:60] > 0.99) and np.all(w[60:] < 0.01)
    # The same split whatever the scale and the order: only the ranks of the mixture matter.
    np.testing.assert_allclose(dm.clean_probability(np.concatenate([large, small]) * 7.0),
                               np.concatenate([w[60:], w[:60]]), atol=1e-5)


def test_the_gmm_split_stops_at_its_iteration_cap_without_a_warning(monkeypatch):
    # DivideMix caps EM at 10 iterations on purpose; sklearn warns at the cap, once per network and epoch.
    capped = lambda **kwargs: GaussianMixture(**{**kwargs, "max_iter": 1})  # noqa: E731
    monkeypatch.setattr(dm, "GaussianMixture", capped)
    losses = np.random.default_rng(0).gamma(1.0, size=200)
    with pytest.warns(ConvergenceWarning):
        capped(n_components=2, random_state=0).fit(losses[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dm.clean_probability(losses).shape == (200,)


def test_the_gmm_split_refuses_too_few_or_non_finite_losses():
    with pytest.raises(ValueError, match="at least 2 finite losses, got 1"):
        dm.clean_probability([0.3])
    with pytest.raises(ValueError, match=r"\(1 not finite\)"):
        dm.clean_probability([0.3, np.nan, 1.0])


def test_sharpening_squares_and_renormalises_at_temperature_one_half():
    # [0.6, 0.4] ** 2 = [0.36, 0.16], over 0.52.
    np.testing.assert_allclose(dm.sharpen(tf.constant([[0.6, 0.4]]), 0.5), [[0.36 / 0.52, 0.16 / 0.52]],
                               rtol=1e-6)
    np.testing.assert_allclose(dm.sharpen(tf.constant([[0.6, 0.4]]), 1.0), [[0.6, 0.4]], rtol=1e-6)


def test_co_refinement_mixes_label_and_prediction_by_the_clean_probability():
    # 0.8 * [1, 0] + 0.2 * [0.3, 0.7] = [0.86, 0.14]; squared [0.7396, 0.0196], over 0.7592.
    refined = dm.co_refine(tf.constant([[1.0, 0.0]]), tf.constant([0.8]), tf.constant([[0.3, 0.7]]), 0.5)
    np.testing.assert_allclose(refined, [[0.7396 / 0.7592, 0.0196 / 0.7592]], rtol=1e-6)


def test_co_guessing_averages_the_two_networks_then_sharpens():
    # ([0.2, 0.8] + [0.4, 0.6]) / 2 = [0.3, 0.7]; squared [0.09, 0.49], over 0.58.
    guessed = dm.co_guess(tf.constant([[0.2, 0.8]]), tf.constant([[0.4, 0.6]]), 0.5)
    np.testing.assert_allclose(guessed, [[0.09 / 0.58, 0.49 / 0.58]], rtol=1e-6)


def test_mixmatch_keeps_the_larger_share_on_each_rows_own_example():
    # lambda 0.3 becomes 0.7; row 0 = 0.7 * x0 + 0.3 * x1, row 1 = 0.7 * x1 + 0.3 * x0.
    inputs, targets = tf.constant([[0.0], [10.0]]), tf.constant([[1.0, 0.0], [0.0, 1.0]])
    mixed_x, mixed_t = dm.mixmatch(inputs, targets, tf.constant(0.3), tf.constant([1, 0]))
    np.testing.assert_allclose(mixed_x, [[3.0], [7.0]], rtol=1e-6)
    np.testing.assert_allclose(mixed_t, [[0.7, 0.3], [0.3, 0.7]], rtol=1e-6)


def test_the_loss_splits_labelled_and_unlabelled_rows():
    # Uniform predictions [0.5, 0.5]: the labelled row's cross-entropy with [1, 0]
    # is log 2; the unlabelled row's squared error with [0, 1] is (0.25 + 0.25) / 2;
    # the mean prediction is the uniform prior, so the penalty is 0.
    out = dm.dividemix_loss(tf.zeros([2, 2]), tf.constant([[1.0, 0.0], [0.0, 1.0]]), tf.constant([1.0, 0.0]),
                            tf.constant(2.0))
    np.testing.assert_allclose(out["labelled"], np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(out["unlabelled"], 0.25, rtol=1e-6)
    np.testing.assert_allclose(out["penalty"], 0.0, atol=1e-7)
    np.testing.assert_allclose(out["loss"], np.log(2.0) + 2.0 * 0.25, rtol=1e-6)
    # A mean prediction [0.8, 0.2] costs 0.5 log(0.5/0.8) + 0.5 log(0.5/0.2).
    logits = tf.math.log(tf.constant([[0.8, 0.2], [0.8, 0.2]]))
    penalty = dm.dividemix_loss(logits, tf.constant([[1.0, 0.0]] * 2), tf.ones([2]), tf.constant(0.0))["penalty"]
    np.testing.assert_allclose(penalty, 0.5 * np.log(0.5 / 0.8) + 0.5 * np.log(0.5 / 0.2), rtol=1e-5)


@pytest.mark.parametrize("epoch, ramp", [(1, 0.0), (2, 0.0), (3, 0.25), (5, 0.75), (6, 1.0), (9, 1.0)])
def test_lambda_u_ramps_over_the_epochs_after_the_warm_up(epoch, ramp):
    # Warm-up of 3 epochs (0-2), ramp of 4: (epoch + 1 - 3) / 4, clipped.
    assert float(dm.linear_rampup(tf.constant(epoch), 3, 4)) == pytest.approx(ramp)


# ---------------------------------------------------------------- the models


def _dividemix(**kwargs):
    model = DivideMix(networks.build_small_cnn(SHAPE, CLASSES), warmup_epochs=1, rampup_epochs=1, **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def test_dividemix_trains_on_arrays_and_splits_after_the_warm_up():
    x, y = _data()
    model = _dividemix()
    history = model.fit(x, {"noisy": y, "clean": y}, batch_size=16, epochs=3, verbose=0)
    logs = history.history
    for name in ("loss", "labelled", "unlabelled", "penalty", "labelled_share", "selection_precision"):
        assert np.all(np.isfinite(logs[name])), name
    assert logs["labelled"][0] == 0.0 and logs["labelled"][2] > 0.0  # warm-up first, DivideMix after
    tables = [t.numpy() for t in model._split.tables]
    assert all(t.shape == (len(x),) and np.all((t >= 0.0) & (t <= 1.0)) for t in tables)
    assert not np.allclose(tables[0], 1.0), "the split was made after the warm-up"
    assert logs["selection_precision"][2] == 1.0  # the labels were clean: every labelled row is right


def test_dividemix_selection_precision_is_the_share_of_right_labels_it_trains_on():
    x, y = _data()
    noisy = np.where(np.arange(len(y)) % 4 == 0, (y + 1) % CLASSES, y)  # a quarter wrong
    keras.utils.set_random_seed(0)
    model = _dividemix()
    logs = model.fit(x, {"noisy": noisy, "clean": y}, batch_size=16, epochs=2, verbose=0).history
    # The split of epoch 1 is the last one made: the tables the step read.
    tables = [t.numpy() for t in model._split.tables]
    labelled = [tables[1 - k] > model.p_threshold for k in range(2)]  # network k reads its peer's
    right = noisy == y
    chosen = sum(int(mask.sum()) for mask in labelled)
    expected = sum(int((mask & right).sum()) for mask in labelled) / chosen
    assert 0.0 < expected < 1.0
    assert logs["selection_precision"][1] == pytest.approx(expected)


def test_dividemix_predicts_the_average_of_its_two_networks():
    x, y = _data(16)
    model = _dividemix()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    probabilities = model.predict(x, verbose=0)
    floats = x.astype(np.float32) / 255.0
    average = 0.5 * sum(keras.activations.softmax(n(floats)).numpy() for n in model.classifiers)
    np.testing.assert_allclose(probabilities, average, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.activations.softmax(model.inference_classifier()(floats)), average,
                               rtol=1e-4, atol=1e-6)
    assert not np.allclose(model.classifiers[0](floats), model.classifiers[1](floats))


def test_dividemix_takes_a_dataset_with_indices_and_refuses_one_without():
    x, y = _data(32)
    with_index = data.train_dataset(x, y, batch_size=8, seed=0, with_index=True)
    model = _dividemix()
    model.fit(with_index, epochs=2, verbose=0)
    assert not np.allclose(model._split.tables[0].numpy(), 1.0)
    without = data.train_dataset(x, y, batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"^DivideMix keeps a clean probability per training example.*"
                                         r"with_index=True"):
        _dividemix().fit(without, epochs=1, verbose=0)
    endless = data.train_dataset(x, y, batch_size=8, seed=0, with_index=True, initial_epoch=0)
    with pytest.raises(ValueError, match=r"may never end: pass split_data"):
        _dividemix().fit(endless, epochs=2, steps_per_epoch=4, verbose=0)  # a split after the warm-up


def test_dividemix_saves_and_loads(tmp_path):
    x, y = _data(16)
    model = _dividemix(p_threshold=0.4, lambda_u=3.0)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config()["p_threshold"] == 0.4 and loaded.get_config()["lambda_u"] == 3.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_instancegm_adds_the_elbo_to_dividemix():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, CLASSES, size=32)
    model = InstanceGM(networks.build_mlp_classifier((6,), CLASSES), z_dim=2, warmup_epochs=1, rampup_epochs=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.fit(x, {"noisy": y, "clean": y}, batch_size=8, epochs=2, verbose=0).history
    for name in ("loss", "reconstruction", "kl_z", "noisy_label_ce", "labelled", "unlabelled", "labelled_share"):
        assert np.all(np.isfinite(logs[name])), name
    assert "coteaching" not in logs and "forget_rate" not in logs  # co-teaching's, unused here
    assert logs["labelled"][0] == 0.0 and logs["labelled"][1] > 0.0
    # q(Y|X) of branch 1 is what it predicts with, as CausalNL.
    np.testing.assert_allclose(model.predict(x, verbose=0), keras.activations.softmax(model.classifier(x)),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("warmup_elbo", [True, False])
def test_instancegms_warm_up_trains_the_vae_only_if_asked(warmup_elbo):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype(np.float32), rng.integers(0, CLASSES, size=32)
    model = InstanceGM(networks.build_mlp_classifier((6,), CLASSES), z_dim=2, warmup_epochs=1, rampup_epochs=1,
                       warmup_elbo=warmup_elbo)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model(x[:1])
    generative = [*model.latent_encoders, *model.decoders, *model.noisy_label_decoders]
    classifiers = model.classifiers

    def weights(networks_):
        return [w.copy() for n in networks_ for w in n.get_weights()]

    def moved(before, networks_):
        return any(not np.array_equal(a, b) for a, b in zip(before, weights(networks_), strict=True))

    vae, nets = weights(generative), weights(classifiers)
    model.fit(x, {"noisy": y, "clean": y}, batch_size=8, epochs=1, verbose=0)  # the warm-up
    assert moved(nets, classifiers)
    assert moved(vae, generative) == warmup_elbo
    vae = weights(generative)
    model.fit(x, {"noisy": y, "clean": y}, batch_size=8, epochs=2, initial_epoch=1, verbose=0)  # the split
    assert moved(vae, generative)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model)).warmup_elbo is warmup_elbo


# ---------------------------------------------------------------- through training, export, a kill


def _start_job(workdir, *options):
    return job.start(workdir, "--method=instancegm", "--deterministic", *options)


def test_a_killed_instancegm_run_resumes_to_the_same_weights(tmp_path):
    """InstanceGM through `training.train`, killed at batch 3 of epoch 3 (after the warm-up, with a
    split made), then rerun: the same weights as an uninterrupted run, since the split is made again
    from the restored weights."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    (code_whole, output_whole), (code_killed, output_killed) = job.finish(
        _start_job(whole), _start_job(killed, "--kill_at=2:3"))
    assert code_whole == 0, output_whole[-3000:]
    assert code_killed == -signal.SIGKILL, output_killed[-3000:]
    [(code, output)] = job.finish(_start_job(killed))
    assert code == 0, output[-3000:]
    want = keras.saving.load_model(whole / "model.keras").get_weights()
    for got, expected in zip(keras.saving.load_model(killed / "model.keras").get_weights(), want, strict=True):
        np.testing.assert_array_equal(got, expected)
    with open(whole / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["labelled"]) > 0.0 for r in rows] == [False, True, True]  # warm-up, then the split
    assert {"unlabelled", "kl_z", "reconstruction", "selection_precision", "val_accuracy"} <= set(rows[0])
    assert "coteaching" not in rows[0] and "forget_rate" not in rows[0]
    with open(whole / "results.json") as f:
        assert "forget_rate" not in json.load(f)


def test_a_file_dataset_or_multi_worker_training_is_refused_for_the_split_before_any_work():
    config = job.config(method="dividemix")
    config.data.name, config.noise.type = "clothing1m", "real"
    with pytest.raises(ValueError, match=r"^model.method='dividemix' splits the training set .* in memory"):
        config_checks.check_config(config)
    config = job.config(method="instancegm", strategy="multi_worker")
    config.data.name = "fashion_mnist"
    with pytest.raises(ValueError, match=r"^model.method='instancegm' splits .* use train.strategy=\"mirrored\""):
        config_checks.check_config(config)


def test_dividemix_exports_the_average_of_its_two_networks(tmp_path):
    x, y = _data(16)
    model = _dividemix()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    version_dir = serving.export_classifier(model, tmp_path, "dm", version=1)
    served = predict.load_predictor(version_dir)
    _, probabilities = predict.predict_images(served, x)
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_a_config_reaches_instancegms_causalnl_keywords():
    # InstanceGM passes CausalNL's keywords on through **kwargs; a config must still set them.
    config = job.config(method="instancegm")
    config.seed, config.model.z_dim, config.model.vae_width, config.model.forget_rate = 3, 5, 8, 0.3
    model = training.build_model(config, (4,), 2)
    assert (model.seed, model.z_dim, model.vae_width, model.forget_rate) == (3, 5, 8, 0.3)
    assert model.warmup_epochs == config.model.warmup_epochs == 1
    assert model.warmup_elbo is True  # the default when the config leaves it None
    assert config.model.pull == "noise" and model.pull == "all"  # CausalNL's keyword, fixed by InstanceGM
    config.model.warmup_elbo = False
    assert training.build_model(config, (4,), 2).warmup_elbo is False


def test_instancegm_refuses_a_pull_it_would_not_use():
    with pytest.raises(ValueError, match=r"InstanceGM pulls q\(Y\|X\) on every example \(pull=\"all\"\), got "
                                         r"pull='untrusted': DivideMix's split"):
        InstanceGM(networks.build_small_cnn(SHAPE, CLASSES), z_dim=2, pull="untrusted")
