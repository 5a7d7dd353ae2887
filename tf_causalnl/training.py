"""Training from a config: data -> noise -> model -> `fit` -> work directory.

`train(config, workdir)` is what the command line runs (`scripts/train.py`);
it uses only the public API (`data`, `noise`, `networks`, `CausalNL`), so a
user's own script can do the same in a few lines. The work directory gets:

  config.json          the full config of the run
  noise.json           realised noise rate and empirical transition matrix
  noisy_labels.npy     the noisy training labels (the noise file)
  metrics.csv          one row per epoch: every loss term, accuracies, forget rate
  tensorboard/         TensorBoard logs
  backup/              Keras BackupAndRestore state: a rerun resumes after the
                       last completed epoch (and continues a finished run
                       when given more epochs)
  checkpoint.keras     the model after the last completed epoch
  model.keras          the final model
  results.json         clean test accuracy: last epoch, and mean of the last 10
                       (of all epochs when there are fewer)
"""

import csv
import json
import os
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf

from tf_causalnl import data, networks, noise
from tf_causalnl.causalnl import CausalNL

#: One dict from method name to model class (baselines join it in later work).
METHODS = {"causalnl": CausalNL}

STRATEGIES = {
    "default": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
}

#: The paper reports clean test accuracy averaged over the last 10 epochs.
LAST_EPOCHS = 10


def load_noisy_data(config: ml_collections.ConfigDict) -> tuple[data.Dataset, np.ndarray, noise.NoiseReport]:
    """Loads the dataset named in the config and corrupts its training labels."""
    dataset = data.load_dataset(config.data.name, config.data.data_dir or None)
    if config.data.train_size:
        keep = np.random.default_rng(config.seed).permutation(len(dataset.y_train))
        keep = np.sort(keep[: config.data.train_size])
        dataset.x_train, dataset.y_train = dataset.x_train[keep], dataset.y_train[keep]
    if config.data.test_size:
        dataset.x_test = dataset.x_test[: config.data.test_size]
        dataset.y_test = dataset.y_test[: config.data.test_size]
    # Features for IDN: flattened pixel values times feature_scale (1.0 keeps
    # the raw 0-255 values of the public code; see noise.instance_dependent_noise).
    features = dataset.x_train.reshape(len(dataset.x_train), -1).astype(np.float32)
    noisy = noise.make_noisy_labels(
        config.noise.type,
        dataset.y_train,
        dataset.num_classes,
        config.noise.rate,
        features=features * config.noise.feature_scale,
        std=config.noise.std,
        seed=config.seed,
        match_rate=config.noise.match_rate,
    )
    return dataset, noisy, noise.noise_report(dataset.y_train, noisy, dataset.num_classes)


def build_model(config: ml_collections.ConfigDict, input_shape, num_classes: int) -> keras.Model:
    """Builds and compiles the model the config describes (call inside a strategy scope)."""
    m = config.model
    if m.method not in METHODS:
        raise ValueError(f"Unknown method {m.method!r}; choose one of {sorted(METHODS)}.")
    kwargs = {"stem": m.resnet_stem} if m.classifier.startswith("resnet") else {}
    classifier = networks.build_classifier(m.classifier, input_shape, num_classes, **kwargs)
    model = METHODS[m.method](
        classifier,
        z_dim=m.z_dim,
        beta0=m.beta0,
        beta1=m.beta1,
        beta2=m.beta2,
        beta3=m.beta3,
        forget_rate=m.forget_rate,
        ramp_epochs=m.ramp_epochs,
        temperature=m.temperature,
        seed=config.seed,
    )
    model.compile(optimizer=keras.optimizers.Adam(config.train.learning_rate))
    return model


def train(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains the configured model into `workdir` and returns the results.

    A rerun on the same work directory resumes from the last completed epoch.
    """
    if config.train.strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {config.train.strategy!r}; choose one of {sorted(STRATEGIES)}."
        )
    os.makedirs(workdir, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    _write_json(os.path.join(workdir, "config.json"), config.to_dict())

    dataset, noisy, report = load_noisy_data(config)
    np.save(os.path.join(workdir, "noisy_labels.npy"), noisy)
    _write_json(
        os.path.join(workdir, "noise.json"),
        {"type": config.noise.type, "requested_rate": config.noise.rate, **report.to_dict()},
    )

    strategy = STRATEGIES[config.train.strategy]()
    train_ds = data.train_dataset(
        dataset.x_train, noisy, dataset.y_train,
        batch_size=config.train.batch_size,
        seed=config.seed,
        augment=config.data.augment,
        crop_padding=config.data.crop_padding,
        flip=config.data.flip,
    )
    test_ds = data.eval_dataset(dataset.x_test, dataset.y_test, batch_size=config.train.eval_batch_size)
    with strategy.scope():
        model = build_model(config, dataset.input_shape, dataset.num_classes)

    metrics_path = os.path.join(workdir, "metrics.csv")
    callbacks = [
        # Kept after the run, so that rerunning a finished run changes nothing
        # and a rerun with more epochs continues it.
        keras.callbacks.BackupAndRestore(os.path.join(workdir, "backup"), delete_checkpoint=False),
        keras.callbacks.CSVLogger(metrics_path, append=True),
        keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard")),
        keras.callbacks.ModelCheckpoint(os.path.join(workdir, "checkpoint.keras")),
    ]
    start = time.perf_counter()
    model.fit(
        train_ds,
        epochs=config.train.epochs,
        validation_data=test_ds,
        callbacks=callbacks,
        verbose=config.train.verbose,
        shuffle=False,  # train_ds shuffles each epoch itself; this silences Keras' warning
    )
    model.save(os.path.join(workdir, "model.keras"))

    results = summarize(metrics_path)
    results.update(
        seconds=round(time.perf_counter() - start, 1),
        realized_noise_rate=report.realized_rate,
        workdir=os.path.abspath(workdir),
    )
    _write_json(os.path.join(workdir, "results.json"), results)
    return results


def summarize(metrics_path: str) -> dict:
    """Clean test accuracy from a run's metrics.csv: last epoch and last-10 mean."""
    with open(metrics_path, newline="") as f:
        rows = list(csv.DictReader(f))
    accuracy = [float(row["val_accuracy"]) for row in rows]
    return {
        "epochs": len(rows),
        "clean_test_accuracy_last": accuracy[-1],
        f"clean_test_accuracy_mean_last_{LAST_EPOCHS}": float(np.mean(accuracy[-LAST_EPOCHS:])),
    }


def _write_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
