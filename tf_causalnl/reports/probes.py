"""The numbers behind a run's pictures: confusion counts, flip rates, and probes of a CausalNL model.

No drawing here: statistics of label arrays, the metrics.csv reader, and what
a trained CausalNL says (reconstructions, class samples, p(Y~|Y,X)).
"""

import csv
from collections.abc import Sequence

import keras
import numpy as np

from tf_causalnl import data, noise
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.reports import label_issues


#: Class names of the datasets that have them; other datasets show class ids.
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}


#: Panels of `training_curves`: a title and the metrics.csv columns it shows.
#: Columns in no panel (a method's own diagnostics) share a last panel.
CURVE_PANELS = (
    ("loss", ("loss", "val_loss")),
    ("CausalNL loss terms", ("reconstruction", "noisy_label_ce", "negative_entropy", "kl_z", "coteaching")),
    ("accuracy", ("val_accuracy", "accuracy", "clean_accuracy", "val_clean_accuracy")),
    ("small-loss selection", ("selection_precision", "forget_rate")),
)


def confusion_counts(y_true, y_pred, num_classes: int) -> np.ndarray:
    """counts[i, j]: the examples of true class i predicted as class j."""
    y_true = noise.check_labels(y_true, num_classes, "y_true", classes_name=None)
    y_pred = noise.check_labels(y_pred, num_classes, "y_pred", classes_name=None)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} and {len(y_pred)}.")
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def row_normalise(counts) -> np.ndarray:
    """Each row divided by its sum; a row of zeros stays zeros."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def flip_rate(matrix) -> float:
    """The mean off-diagonal mass of a transition matrix's non-empty rows.

    Every clean class counts equally, so this is the flip rate under a
    uniform class prior (`transition.average_flip_rate`); the realised rate of
    noise.json weighs classes by their frequency instead.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    mass = matrix.sum(axis=1)
    rows = mass > 0
    return float(np.mean((mass - np.diag(matrix))[rows])) if rows.any() else float("nan")


def average_per_class(probabilities, classes, num_classes: int) -> np.ndarray:
    """Row y: the mean of `probabilities[i]` over the examples i of class y.

    With `probabilities[i]` = p(Y~ | Y=classes[i], X=x_i), row y is the
    transition P(Y~ | Y=y) averaged over the examples of clean class y. A
    class without examples gets a row of zeros, as in `noise.transition_matrix`.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    classes = noise.check_labels(classes, num_classes, "classes", classes_name=None)
    if probabilities.shape != (len(classes), num_classes):
        raise ValueError(f"probabilities must have shape ({len(classes)}, {num_classes}), "
                         f"got {probabilities.shape}.")
    one_hot = np.eye(num_classes)[classes]
    sums, counts = one_hot.T @ probabilities, one_hot.sum(axis=0)[:, None]
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def tile(images, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """(rows, columns, H, W, C) images as one picture, `pad` pixels of `fill` between."""
    images = np.asarray(images, dtype=np.float32)
    rows, columns, height, width, channels = images.shape
    padding = ((0, 0), (0, 0), (0, pad), (0, pad), (0, 0))
    mosaic = np.pad(images, padding, constant_values=fill).transpose(0, 2, 1, 3, 4)
    mosaic = mosaic.reshape(rows * (height + pad), columns * (width + pad), channels)
    return mosaic[: rows * (height + pad) - pad, : columns * (width + pad) - pad]


def read_metrics(path: str) -> dict[str, np.ndarray]:
    """The columns of a metrics.csv as float arrays (an empty cell is NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = rows[0].keys() if rows else ()
    return {c: np.array([float(r[c]) if r.get(c) not in (None, "") else np.nan for r in rows])
            for c in columns}


def curve_panels(columns: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(title, columns) of each panel of `training_curves` with something to show."""
    columns = [c for c in columns if c != "epoch"]
    panels = [(title, [c for c in names if c in columns]) for title, names in CURVE_PANELS]
    placed = {c for _, names in CURVE_PANELS for c in names}
    panels.append(("other logged values", [c for c in columns if c not in placed]))
    return [(title, names) for title, names in panels if names]


def _one_hot(classes, num_classes: int):
    return keras.ops.one_hot(keras.ops.convert_to_tensor(classes, "int32"), num_classes)


def noisy_label_probabilities(model: CausalNL, x, classes, batch_size: int = 256) -> np.ndarray:
    """p(Y~ | Y=classes[i], X=x[i]) of branch 1, fed as in training (Algorithm 1, lines 5-7).

    The noisy-label decoder reads the reconstruction decoder(z, y), with z
    the mean of q(Z | X=x, Y=y) and y one-hot.
    """
    classes = noise.check_labels(classes, model.num_classes, "classes", classes_name=None)
    outputs = [np.zeros((0, model.num_classes), np.float32)]
    for start in range(0, len(classes), batch_size):
        end = start + batch_size
        outputs.append(label_issues.transition_rows(model, x[start:end], classes[start:end]).numpy())
    return np.concatenate(outputs)


def reconstruct(model: CausalNL, x) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes, reconstructions) of branch 1: y = argmax q(Y|X) one-hot,
    z = the mean of q(Z|X,Y), reconstruction = p(X|Y,Z)'s output."""
    images = data.to_float(x)
    predicted = keras.ops.argmax(model.classifiers[0](images, training=False), axis=-1)
    y = _one_hot(predicted, model.num_classes)
    z_mean, _ = model.latent_encoders[0]([images, y], training=False)
    reconstruction = model.decoders[0]([z_mean, y], training=False)
    return keras.ops.convert_to_numpy(predicted), keras.ops.convert_to_numpy(reconstruction)


def reconstruction_quality(model: CausalNL, x, batch_size: int = 256) -> dict[str, float]:
    """How well branch 1's p(X|Y,Z) reconstructs `x`, against images that know nothing.

    Returns the mean L1 error per pixel of `reconstruct`'s output
    ("reconstruction_l1"), and of the per-pixel median of `x` put in place of
    every reconstruction ("median_image_l1", the best constant image under
    L1). A decoder that has learned images scores well below the median
    image; one near or above it reconstructs nothing of the instance (the
    blank tiles of a decoder trained by the noisy-label term alone).
    """
    if not len(x):
        raise ValueError("reconstruction_quality needs images; x is empty.")
    errors = []
    for start in range(0, len(x), batch_size):
        images = keras.ops.convert_to_numpy(data.to_float(x[start:start + batch_size]))
        _, outputs = reconstruct(model, x[start:start + batch_size])
        errors.append(np.abs(images - outputs).reshape(len(images), -1).mean(axis=1))
    images = keras.ops.convert_to_numpy(data.to_float(x))
    median = np.median(images, axis=0)
    return {
        "reconstruction_l1": float(np.concatenate(errors).mean()),
        "median_image_l1": float(np.abs(images - median).mean()),
    }


def sample_images(decoder: keras.Model, classes: Sequence[int], per_class: int, seed: int = 0) -> np.ndarray:
    """(len(classes), per_class, ...) samples of p(X|Y,Z): y one-hot, Z ~ N(0, I) seeded."""
    z_dim, num_classes = decoder.inputs[0].shape[-1], decoder.inputs[1].shape[-1]
    z = np.random.default_rng(seed).standard_normal((len(classes) * per_class, z_dim))
    z = keras.ops.convert_to_tensor(z, "float32")
    y = _one_hot(np.repeat(np.asarray(classes, np.int64), per_class), num_classes)
    images = keras.ops.convert_to_numpy(decoder([z, y], training=False))
    return images.reshape(len(classes), per_class, *images.shape[1:])


def is_image_model(model: keras.Model) -> bool:
    """Whether the model's classifier reads images (H, W, C) rather than vectors."""
    return len(model.classifier.input_shape) == 4
