"""The noise estimate a run needs (forget_rate="auto", Forward, Reweight), cached on disk.

Runs of a grid that share data, noise and seed share one estimate: it is
computed once, under a file lock, and read by the others.
"""

import contextlib
import hashlib
import json
import os
import time

import ml_collections
import numpy as np

from tf_causalnl import data
from tf_causalnl.checkpoints import write_json
from tf_causalnl.models import estimate as noise_estimate
from tf_causalnl.models import forget_rate
from tf_causalnl.noise import estimation
from tf_causalnl.training.registry import method_class, build_classifier, constructor_parameters


def needs_estimate(config: ml_collections.ConfigDict) -> bool:
    """Whether the run needs the noise estimate: a method that takes a
    transition matrix, or one with a forget rate set to "auto"."""
    parameters = constructor_parameters(method_class(config))
    auto = "forget_rate" in parameters and config.model.forget_rate == forget_rate.AUTO
    return "transition" in parameters or auto


def estimate_noise(config: ml_collections.ConfigDict, dataset: data.Dataset, noisy: np.ndarray,
                   workdir: str) -> estimation.NoiseEstimate:
    """The anchor-point estimate for this run's noisy labels, made once.

    It is cached as noise_estimate.json in `config.estimate.cache_dir` (keyed
    by everything it depends on) or, without one, in the work directory.
    """
    # Keys left unset (None) stay out, so that estimates cached before those
    # keys existed keep their file names.
    key = {"data": {k: v for k, v in config.data.to_dict().items() if v is not None},
           "noise": config.noise.to_dict(), "seed": config.seed,
           "classifier": config.model.classifier, "resnet_stem": config.model.resnet_stem,
           "estimate": {k: v for k, v in config.estimate.to_dict().items() if k != "cache_dir" and v is not None},
           "batch_size": config.train.batch_size, "learning_rate": config.train.learning_rate}
    if config.model.pretrained:
        key["pretrained"] = config.model.pretrained
    if config.estimate.cache_dir:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = os.path.join(config.estimate.cache_dir, f"noise_estimate-{digest}.json")
    else:
        path = os.path.join(workdir, "noise_estimate.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _exclusive(path + ".lock"):  # processes sharing a cache make it once
        estimate = _read_estimate(path) or _make_estimate(config, dataset, noisy, path, key)
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(workdir):
        write_json(os.path.join(workdir, "noise_estimate.json"), {"key": key, "estimate": estimate.to_dict()})
    return estimate


def _read_estimate(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return estimation.NoiseEstimate.from_dict(json.load(f)["estimate"])


@contextlib.contextmanager
def _exclusive(lock_path: str, stale_seconds: float = 3600.0):
    """Holds a lock file; waits while another process holds it (unless it is stale)."""
    while True:
        try:
            os.close(os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            try:
                if time.time() - os.path.getmtime(lock_path) > stale_seconds:
                    os.remove(lock_path)  # left by a killed process
            except FileNotFoundError:
                pass
            time.sleep(1.0)
    try:
        yield
    finally:
        os.remove(lock_path)


def _make_estimate(config, dataset, noisy, path, key):
    estimate = noise_estimate.estimate_noise(
        build_classifier(config, dataset.input_shape, dataset.num_classes),
        dataset.x_train,
        noisy,
        epochs=config.estimate.epochs,
        batch_size=config.train.batch_size,
        learning_rate=config.train.learning_rate,
        holdout=config.estimate.holdout,
        percentile=config.estimate.percentile,
        members=config.estimate.get("members") or 1,
        seed=config.seed,
    )
    write_json(path, {"key": key, "estimate": estimate.to_dict()})
    return estimate
