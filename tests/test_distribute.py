"""Strategies: one step on two devices, two workers on localhost, per-replica selection."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import CausalNL, data, networks, training
from tf_causalnl.models import distributions, selection
from tf_causalnl.models.dividemix import DivideMix
from tf_causalnl.training import distribute

import train_job as job  # tests/ has no __init__.py: pytest's prepend import mode puts it on sys.path

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: Tolerance of the weight comparisons across device counts. Adam's first steps
#: move a weight by about lr * g / (|g| + eps); for the few units whose gradient
#: is near eps, float rounding of the sums over replicas shows up as ~2e-6 in
#: the weights (seen under the default objective, in one column of a 64x64
#: layer; the two-worker run on a CPU with AVX2 and no AVX-512 showed 2.9e-5,
#: one weight of 256), where a scaling error would be of the order of the
#: step, 1e-2.
ATOL = 1e-4

#: Bounds each worker process of the two-worker test.
WORKER_TIMEOUT_SECONDS = 420


def _vector_model(seed=3):
    """CausalNL on 4-d vectors around a dense classifier: no batch normalisation."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    model = CausalNL(keras.Model(inputs, keras.layers.Dense(2)(hidden)), z_dim=2,
                     forget_rate=0.0, ramp_epochs=1, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def _vectors(n=32):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


def test_one_step_on_two_devices_gives_the_weights_of_one_device(two_cpu_strategy):
    """Losses divided by the global batch and noise drawn for the global batch:
    a CausalNL step on two replicas is the step on one (float tolerance)."""
    x, y = _vectors()
    weights = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        with strategy.scope():
            model = _vector_model()
        dataset = data.train_dataset(x, y, batch_size=16, seed=1, initial_epoch=0)
        model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    assert two_cpu_strategy.num_replicas_in_sync == 2
    for one, two in zip(*weights, strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=ATOL)
    # The step did move the weights (a comparison of untouched weights proves nothing).
    assert any(not np.allclose(w, v) for w, v in zip(weights[0], _vector_model().get_weights()))


def test_dividemix_warms_up_on_two_devices_as_on_one_then_splits(two_cpu_strategy):
    """DivideMix under MirroredStrategy: its CE warm-up is the step of one device; after it, the
    per-example split (plain variables read by index in every replica) is made and used."""
    x, y = _vectors()
    models = []
    for strategy in (tf.distribute.get_strategy(), two_cpu_strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = DivideMix(networks.build_mlp_classifier((4,), 2, hidden_units=(8,)), warmup_epochs=1,
                              rampup_epochs=1, seed=0)
            model.compile(optimizer=keras.optimizers.Adam(1e-2))
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
        models.append(model)
    for one, two in zip(models[0].get_weights(), models[1].get_weights(), strict=True):
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=ATOL)
    mirrored = models[1]
    before = mirrored.get_weights()
    noisy = y.copy()
    noisy[::4] = 1 - y[::4]  # a quarter of the labels wrong
    logs = mirrored.fit(x, {"noisy": noisy, "clean": y}, batch_size=16, epochs=2, initial_epoch=1, verbose=0,
                        shuffle=False).history
    assert logs["labelled"][0] > 0.0 and 0.0 < logs["labelled_share"][0] <= 1.0
    assert np.isfinite(logs["loss"][0])
    tables = [t.numpy() for t in mirrored._split.tables]
    assert not np.allclose(tables[0], 1.0)
    assert logs["selection_precision"][0] == pytest.approx(_split_precision(tables, noisy == y, 0.5))
    assert any(not np.allclose(a, b) for a, b in zip(before, mirrored.get_weights()))


def _split_precision(tables, right, threshold):
    """By hand: the share of right labels among the rows each network trained on as
    labelled, over one epoch that visits every example once (network k reads its
    peer's table: the rows whose clean probability there exceeds the threshold)."""
    labelled = [tables[1 - k] > threshold for k in range(2)]
    chosen = sum(int(mask.sum()) for mask in labelled)
    assert 0 < chosen, "no row was labelled: the precision would be empty"
    precision = sum(int((mask & right).sum()) for mask in labelled) / chosen
    assert 0.0 < precision < 1.0, "a precision of 0 or 1 would not test the weighing"
    return precision


def test_noise_of_a_replica_is_its_rows_of_the_global_draw(two_cpu_strategy):
    seed = tf.constant([4, 2], tf.int64)
    normal = distributions.tfd.Normal(0.0, 1.0)
    whole = normal.sample([8, 3], seed=tf.cast(seed, tf.int32)).numpy()
    parts = two_cpu_strategy.run(lambda: distributions.replica_rows(normal, tf.zeros([4, 3]), seed))
    np.testing.assert_array_equal(np.concatenate(two_cpu_strategy.experimental_local_results(parts)), whole)


def test_coteaching_keeps_the_same_fraction_on_every_replica(two_cpu_strategy):
    """Selection is per replica: each keeps round((1 - rate) * b) of its b examples."""
    losses_per_example = tf.constant(np.random.default_rng(0).random(20), tf.float32)
    dataset = tf.data.Dataset.from_tensor_slices(losses_per_example).batch(20)
    batch = next(iter(two_cpu_strategy.experimental_distribute_dataset(dataset)))
    masks = two_cpu_strategy.run(lambda loss: selection.small_loss_mask(loss, 0.3), args=(batch,))
    kept = [float(tf.reduce_sum(m)) for m in two_cpu_strategy.experimental_local_results(masks)]
    assert kept == [7.0, 7.0]  # round(0.7 * 10) on each replica of 10


def test_replica_slices_give_each_pipeline_its_replicas_rows():
    rows = tf.data.Dataset.from_tensors((tf.range(8), tf.range(8) * 10))
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                         num_replicas_in_sync=4)
    out = list(distribute.replica_slices(rows, context).as_numpy_iterator())
    assert [a.tolist() for a, _ in out] == [[4, 5], [6, 7]]
    assert [b.tolist() for _, b in out] == [[40, 50], [60, 70]]


def test_the_multi_worker_loop_matches_keras_fit_on_one_device():
    """`distribute.fit` (the loop used where Keras' fit fails) is Keras' fit on one device."""
    x, y = _vectors(64)
    epoch_data = lambda epoch: data.train_dataset(x, y, batch_size=16, seed=1, initial_epoch=epoch)
    validation = data.eval_dataset(x, y, batch_size=32)
    histories, weights = [], []
    for use_keras in (True, False):
        model = _vector_model()
        args = dict(epochs=2, steps_per_epoch=4, validation_data=validation, verbose=0)
        if use_keras:
            history = model.fit(epoch_data(0), shuffle=False, **args)
        else:
            history = distribute.fit(model, epoch_data, **args)
        histories.append(history.history)
        weights.append(model.get_weights())
    for one, other in zip(*weights, strict=True):
        np.testing.assert_allclose(other, one, rtol=1e-6, atol=1e-7)
    for key in ("loss", "kl_z", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5, err_msg=key)


def test_make_strategy_refuses_unknown_names_and_a_missing_tf_config(monkeypatch):
    with pytest.raises(ValueError, match=r"Unknown strategy 'tpu'.*'default', 'mirrored', 'multi_worker'"):
        distribute.make_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the cluster in the TF_CONFIG environment"):
        distribute.make_strategy(distribute.MULTI_WORKER)
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="TF_CONFIG is not a usable cluster description"):
        distribute.make_strategy(distribute.MULTI_WORKER)
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}))
    with pytest.raises(ValueError, match="task index 2 is outside its 2 workers"):
        distribute.make_strategy(distribute.MULTI_WORKER)


@pytest.mark.parametrize("cluster, task, chief", [
    ({}, (None, None), True),
    ({"worker": ["a:1", "b:2"]}, ("worker", 0), True),
    ({"worker": ["a:1", "b:2"]}, ("worker", 1), False),
    ({"chief": ["c:0"], "worker": ["a:1"]}, ("worker", 0), False),
    ({"chief": ["c:0"], "worker": ["a:1"]}, ("chief", 0), True),
])
def test_only_the_chief_writes(cluster, task, chief):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task[0], task_id=task[1])

    class Strategy:
        cluster_resolver = resolver

    assert distribute.is_chief(Strategy()) is chief


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_to_the_weights_of_one_process(tmp_path, monkeypatch):
    """`training.train` under multi_worker, two processes, against one process.

    Also checks that Keras' own fit still fails under MultiWorkerMirroredStrategy
    (keras-team/keras issue 20585): when it stops failing, `distribute.fit`
    can retire and `training.train` can call `model.fit` everywhere.
    """
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    workdir = tmp_path / "cluster"
    worker_tmp = tmp_path / "worker_tmp"  # where the non-chief worker writes, and must clean up
    worker_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(worker_tmp)}
    workers = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "train_job.py"), str(workdir),
             f"--strategy={distribute.MULTI_WORKER}", "--probe_keras_fit"],
            env={**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(2)
    ]
    # The single-process reference trains here meanwhile.
    monkeypatch.setitem(data.LOADERS, job.NAME, job.load_tiny_vectors)
    training.train(job.config(distribute.DEFAULT), str(tmp_path / "single"))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=WORKER_TIMEOUT_SECONDS)[0])
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]

    cluster_model = keras.saving.load_model(workdir / "model.keras")
    single_model = keras.saving.load_model(tmp_path / "single" / "model.keras")
    for a, b in zip(cluster_model.get_weights(), single_model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=ATOL)
    rows = (workdir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + job.config().train.epochs  # the header and one row per epoch, by the chief
    assert not list(worker_tmp.glob("tf_causalnl_worker_*"))
    keras_error = (workdir / "keras_fit_error.txt").read_text()
    assert keras_error, ("Keras' fit now works under MultiWorkerMirroredStrategy: retire "
                         "distribute.fit and call model.fit for every strategy in training.train.")


def test_train_under_mirrored_matches_one_device_and_checks_the_batch_split(tmp_path, monkeypatch):
    """`train.strategy="mirrored"` (here the two logical CPUs) through `training.train`."""
    monkeypatch.setitem(data.LOADERS, job.NAME, job.load_tiny_vectors)
    odd = job.config(distribute.MIRRORED)
    odd.train.batch_size = 15
    with pytest.raises(ValueError, match="does not split evenly over the strategy's 2 replicas; "
                                         "use a multiple of 2, such as 14 or 16"):
        training.train(odd, str(tmp_path / "odd"))
    assert not (tmp_path / "odd").exists()

    for strategy in (distribute.DEFAULT, distribute.MIRRORED):
        training.train(job.config(strategy), str(tmp_path / strategy))
    mirrored = keras.saving.load_model(tmp_path / distribute.MIRRORED / "model.keras").get_weights()
    single = keras.saving.load_model(tmp_path / distribute.DEFAULT / "model.keras").get_weights()
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=ATOL)
