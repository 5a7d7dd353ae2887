"""Fault tolerance: killed runs resume exactly, writes are atomic, determinism, the NaN guard."""

import csv
import json
import os
import signal

import keras
import numpy as np
import pytest

from tf_causalnl import checkpoints, data, training
from tf_causalnl.models import callbacks, losses

import train_job as job  # tests/ has no __init__.py: pytest's prepend import mode puts it on sys.path

def _start(workdir, *options):
    return job.start(workdir, "--forget_rate=0.2", "--deterministic", *options)


def _weights(workdir):
    return keras.saving.load_model(os.path.join(workdir, "model.keras")).get_weights()


def _epochs_and_rates(workdir):
    with open(os.path.join(workdir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(r["epoch"]) for r in rows], [float(r["forget_rate"]) for r in rows]


def test_killed_runs_resume_exactly_and_deterministic_runs_agree(tmp_path):
    """Four processes with one config (op determinism on, seed 0): A and B
    run through; C is SIGKILLed at batch 4 of epoch 2, D while it writes the
    backup of epoch 2 (its weights file half written). C and D are then
    rerun on their work directories. All four must end with the same
    weights, bit for bit: two runs of one config agree, and the resumed
    runs restore weights, optimizer state and epoch, and replay each epoch's
    data and noise from (seed, epoch)."""
    a, b, c, d = (tmp_path / name for name in "abcd")
    first = job.finish(*[_start(a), _start(b), _start(c, "--kill_at=1:3"), _start(d, "--kill_in_backup=1")])
    for code, output in first[:2]:
        assert code == 0, output[-3000:]
    for code, output in first[2:]:
        assert code == -signal.SIGKILL, output[-3000:]

    # What the kills left: C finished epoch 1 only; D's backup of epoch 2 died
    # half-written under its temporary name, and the backup of epoch 1 stands.
    assert checkpoints.read_state(c / "backup")["epoch"] == 1
    assert checkpoints.read_state(d / "backup")["epoch"] == 1
    assert (d / "backup" / "epoch-00001.weights.h5").exists()
    assert [p.name for p in (d / "backup").glob(".epoch-00002.*")], "the kill came before the rename"
    assert not (c / "model.keras").exists() and not (d / "model.keras").exists()

    for code, output in job.finish(*[_start(c), _start(d)]):
        assert code == 0, output[-3000:]

    reference = _weights(a)
    for run in (b, c, d):
        for got, want in zip(_weights(run), reference, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=str(run))
    epochs = job.config().train.epochs
    for run in (a, c, d):
        # One row per epoch (the redone epoch's partial row was dropped), and
        # the forget-rate schedule went on where it stopped (ramp of 2 epochs).
        got_epochs, rates = _epochs_and_rates(run)
        assert got_epochs == list(range(epochs))
        assert rates == pytest.approx([0.0, 0.2, 0.2])
    assert not list((d / "backup").glob(".epoch-*")), "stale temporaries are cleared by the next backup"


def _train_tiny(tmp_path, monkeypatch, **changes):
    monkeypatch.setitem(data.LOADERS, job.NAME, job.load_tiny_vectors)
    config = job.config()
    for key, value in changes.items():
        section, name = key.split("__")
        config[section][name] = value
    workdir = tmp_path / "run"
    return workdir, training.train(config, str(workdir))


def test_a_diverging_run_stops_and_names_the_term(tmp_path, monkeypatch):
    """The KL term turns NaN: training stops at that batch, says so, and
    keeps no model or backup of the diverged epoch."""
    monkeypatch.setattr(losses, "latent_kl", lambda mean, log_variance: mean[:, 0] * np.nan)
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 1: kl_z = nan went non-finite first"):
        _train_tiny(tmp_path, monkeypatch)
    workdir = tmp_path / "run"
    assert not (workdir / "model.keras").exists()
    assert checkpoints.read_state(workdir / "backup") is None


def test_the_guard_names_only_the_terms_already_non_finite():
    guard = callbacks.TerminateOnNonFinite()
    guard.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    guard.model.stop_training = False  # as fit sets it
    guard.on_train_begin()
    guard.on_epoch_begin(2)
    guard.on_train_batch_end(4, {"loss": 1.0, "kl_z": 0.5})
    assert guard.problem is None and not guard.model.stop_training
    guard.on_train_batch_end(5, {"loss": float("inf"), "reconstruction": 0.1, "noisy_label_ce": float("inf")})
    assert guard.model.stop_training
    assert "epoch 3, batch 6: noisy_label_ce = inf went non-finite first" in guard.problem
    assert "reconstruction" not in guard.problem


def test_an_atomic_write_that_fails_keeps_the_previous_file(tmp_path):
    path = tmp_path / "state.json"
    checkpoints.write_json(str(path), {"epoch": 1})

    def half_then_fail(temporary):
        with open(temporary, "w") as f:
            f.write('{"epo')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoints.write_atomically(str(path), half_then_fail)
    assert json.loads(path.read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_restore_without_a_backup_starts_at_epoch_zero(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    assert checkpoints.restore(model, str(tmp_path / "backup")) == 0


def test_backup_and_restore_carry_the_optimizer_state(tmp_path):
    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        m.compile(optimizer="adam", loss="mse")
        return m

    x, y = np.ones((8, 2), "float32"), np.zeros((8, 1), "float32")
    trained = model()
    trained.fit(x, y, epochs=2, verbose=0,
                callbacks=[checkpoints.EpochBackup(str(tmp_path / "backup"), str(tmp_path / "model.keras"))])
    fresh = model()
    assert checkpoints.restore(fresh, str(tmp_path / "backup")) == 2
    assert int(fresh.optimizer.iterations) == int(trained.optimizer.iterations) == 2
    for got, want in zip(fresh.optimizer.variables, trained.optimizer.variables, strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-00002.weights.h5", "state.json"]
    assert (tmp_path / "model.keras").exists()


def test_a_non_finite_epoch_is_not_backed_up(tmp_path):
    backup = checkpoints.EpochBackup(str(tmp_path / "backup"))
    backup.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    backup.on_epoch_end(0, {"loss": float("nan")})
    assert checkpoints.read_state(str(tmp_path / "backup")) is None
    backup.on_epoch_end(0, {"loss": 0.5})
    assert checkpoints.read_state(str(tmp_path / "backup")) == {"epoch": 1, "weights": "epoch-00001.weights.h5"}
