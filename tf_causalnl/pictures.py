"""Pictures of a trained run, for a user who would rather look than read.

`write_pictures` writes into `<workdir>/pictures/` the PNGs that apply to the
run, each atomically (a temporary file, then a rename):

  training_curves.png    metrics.csv against the epoch: the loss and its terms,
                         the accuracies, small-loss selection precision and
                         the forget rate, whichever the method logs
  confusion_matrix.png   clean test labels against the classifier's predictions
  transition.png         the noisy-label transition P(Y~|Y) the run estimated
                         (CausalNL: its p(Y~|Y,X) averaged per clean class;
                         Forward, Reweight, T-Revision: the anchor-point
                         estimate) beside the true one
  reconstructions.png    CausalNL on images: test images of each class and
                         their reconstructions from p(X|Y,Z)
  class_samples.png      CausalNL on images: samples of p(X|Y,Z) for each
                         class Y with Z ~ N(0, I)

`top_label_issues` draws label_issues.png, the likeliest wrong labels, for
`tf_causalnl.issue_report` (`scripts/label_issues.py`).

`pictures_from_workdir` does the same for a saved run (`scripts/pictures.py`).
The numbers behind the pictures (confusion counts, per-class averages, flip
rates, tiling images) are small pure functions, tested on their own.
Matplotlib is imported only to draw, on a bare `Figure` with the Agg canvas,
so the library sets up no global plotting state.
"""

import csv
import json
import logging
import os
from collections.abc import Mapping, Sequence

import keras
import ml_collections
import numpy as np

from tf_causalnl import data, label_issues, noise
from tf_causalnl.causalnl import CausalNL
from tf_causalnl.checkpoints import write_atomically

_log = logging.getLogger(__name__)

#: Class names of the datasets that have them; other datasets show class ids.
CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"),
}
#: Heatmaps of at most this many classes get a number in every cell.
ANNOTATE_MAX_CLASSES = 12
#: Heatmaps of at most this many classes name every class on the axes.
TICK_MAX_CLASSES = 20
#: The image pictures show at most this many classes, so rows stay legible.
IMAGE_MAX_CLASSES = 10
#: CausalNL's transition is averaged over at most this many training examples.
TRANSITION_MAX_EXAMPLES = 2000

#: Ỹ, the noisy label, in matplotlib's mathtext.
_NOISY = r"$\tilde{Y}$"
_TRAIN_COMMAND = "python scripts/train.py --config configs/<experiment>.py --workdir {}"

#: Panels of `training_curves`: a title and the metrics.csv columns it shows.
#: Columns in no panel (a method's own diagnostics) share a last panel.
CURVE_PANELS = (
    ("loss", ("loss", "val_loss")),
    ("CausalNL loss terms", ("reconstruction", "noisy_label_ce", "negative_entropy", "kl_z", "coteaching")),
    ("accuracy", ("val_accuracy", "accuracy", "clean_accuracy", "val_clean_accuracy")),
    ("small-loss selection", ("selection_precision", "forget_rate")),
)
_CURVE_LABELS = {
    "loss": "training loss",
    "val_loss": "test cross-entropy (val_loss)",
    "val_accuracy": "clean test (val_accuracy)",
    "accuracy": "train, noisy labels (accuracy)",
    "clean_accuracy": "train, clean labels (clean_accuracy)",
}


# ----------------------------------------------------------------------------
# The numbers behind the pictures.


def _check_classes(labels, num_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not (labels.size == 0 or labels.dtype.kind in "iu"):
        raise ValueError(f"{name} must be a 1-D array of integer class ids, got shape "
                         f"{labels.shape} and dtype {labels.dtype}.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), found values in "
                         f"[{labels.min()}, {labels.max()}].")
    return labels.astype(np.int64)


def confusion_counts(y_true, y_pred, num_classes: int) -> np.ndarray:
    """counts[i, j]: the examples of true class i predicted as class j."""
    y_true = _check_classes(y_true, num_classes, "y_true")
    y_pred = _check_classes(y_pred, num_classes, "y_pred")
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
    classes = _check_classes(classes, num_classes, "classes")
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


# ----------------------------------------------------------------------------
# What the networks of CausalNL's branch 1 compute for the pictures.


def _one_hot(classes, num_classes: int):
    return keras.ops.one_hot(keras.ops.convert_to_tensor(classes, "int32"), num_classes)


def noisy_label_probabilities(model: CausalNL, x, classes, batch_size: int = 256) -> np.ndarray:
    """p(Y~ | Y=classes[i], X=x[i]) of branch 1, fed as in training (Algorithm 1, lines 5-7).

    The noisy-label decoder reads the reconstruction decoder(z, y), with z
    the mean of q(Z | X=x, Y=y) and y one-hot.
    """
    classes = _check_classes(classes, model.num_classes, "classes")
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


# ----------------------------------------------------------------------------
# Drawing.


def _figure(width: float, height: float):
    # Imported here: importing the library sets up no plotting state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str) -> str:
    """Writes the figure as a PNG atomically: a temporary file, then os.replace."""
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))
    return path


def _class_names(class_names, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ValueError(f"Got {len(class_names)} class names for {num_classes} classes.")
    return [str(name) for name in class_names]


def _heatmap(ax, matrix, title: str, names: list[str], annotations, xlabel: str, ylabel: str):
    size = len(matrix)
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if size <= TICK_MAX_CLASSES:
        ax.set_xticks(range(size), names, rotation=90 if max(map(len, names)) > 2 else 0)
        ax.set_yticks(range(size), names)
    if size <= ANNOTATE_MAX_CLASSES:
        for (i, j), text in np.ndenumerate(annotations):
            color = "white" if matrix[i, j] > 0.5 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize="x-small", color=color)
    return image


def confusion_matrix(y_true, y_pred, num_classes: int, path: str, *, class_names=None) -> str:
    """Writes the row-normalised confusion matrix of clean labels against predictions.

    Rows are true classes, columns predicted ones; with few classes each cell
    shows its percentage of the row and its count.
    """
    names = _class_names(class_names, num_classes)
    counts = confusion_counts(y_true, y_pred, num_classes)
    rates = row_normalise(counts)
    annotations = np.vectorize(lambda r, c: f"{100 * r:.0f}%\n{c}")(rates, counts)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    side = min(3.0 + 0.5 * num_classes, 12.0)
    figure = _figure(side + 1.0, side)
    ax = figure.subplots()
    title = f"Clean test labels vs predictions (accuracy {accuracy:.1%})\nrows normalised"
    image = _heatmap(ax, rates, title, names, annotations, "predicted class", "true (clean) class")
    figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    return _save(figure, path)


def transition(estimated, true_matrix, path: str, *, estimate_label: str = "estimate",
               class_names=None) -> str:
    """Writes the estimated transition P(Y~|Y) beside the true one (rows clean classes).

    Either may be None (not both); both share one colour scale, and each
    title gives the matrix's mean off-diagonal mass (`flip_rate`).
    """
    panels = [(m, label) for m, label in ((estimated, estimate_label),
                                          (true_matrix, "true transition (empirical)"))
              if m is not None]
    if not panels:
        raise ValueError("transition needs an estimated or a true matrix; both are None.")
    num_classes = len(panels[0][0])
    names = _class_names(class_names, num_classes)
    side = min(3.0 + 0.45 * num_classes, 10.0)
    figure = _figure(side * len(panels) + 1.0, side + 0.5)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (matrix, label) in zip(axes, panels):
        matrix = np.asarray(matrix, dtype=np.float64)
        text = np.vectorize(lambda v: f"{v:.2f}")(matrix)
        title = f"{label}\nmean off-diagonal mass {flip_rate(matrix):.3f}"
        image = _heatmap(ax, matrix, title, names, text, f"noisy label {_NOISY}", "clean class Y")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label=f"P({_NOISY} | Y)")
    return _save(figure, path)


def training_curves(metrics: Mapping[str, np.ndarray], path: str) -> str:
    """Writes the columns of a metrics.csv against the epoch, one panel per group
    (`CURVE_PANELS`); works with whatever columns the method logged."""
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 (see _figure)

    panels = curve_panels(list(metrics))
    if not panels:
        raise ValueError(f"No metrics to plot; the columns are {sorted(metrics)}.")
    length = len(next(iter(metrics.values())))
    epochs = metrics.get("epoch", np.arange(length))
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = _figure(4.5 * columns, 3.2 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (title, names) in zip(axes, panels):
        for name in names:
            ax.plot(epochs, metrics[name], marker=".", label=_CURVE_LABELS.get(name, name))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(np.min(epochs) - 0.5, np.max(epochs) + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return _save(figure, path)


def _show_images(ax, mosaic, row_labels: list[str], image_height: int, pad: int = 1) -> None:
    if mosaic.shape[-1] == 1:
        ax.imshow(mosaic[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(np.clip(mosaic, 0.0, 1.0))
    centres = [i * (image_height + pad) + image_height / 2 for i in range(len(row_labels))]
    ax.set_yticks(centres, row_labels, fontsize="small")
    ax.set_xticks([])


def _image_classes(num_classes: int) -> tuple[list[int], str]:
    shown = list(range(min(num_classes, IMAGE_MAX_CLASSES)))
    note = f" (first {len(shown)} of {num_classes} classes)" if len(shown) < num_classes else ""
    return shown, note


def reconstructions(model: CausalNL, x, y, path: str, *, per_class: int = 6, class_names=None) -> str:
    """Writes test images of each class (a row) above their reconstructions from
    p(X|Y,Z) of branch 1, with y the predicted class and z the mean of q(Z|X,Y)."""
    if not is_image_model(model):
        raise ValueError("reconstructions draws images; this model reads vectors.")
    names = _class_names(class_names, model.num_classes)
    classes, note = _image_classes(model.num_classes)
    y = _check_classes(y, model.num_classes, "y")
    chosen = [np.flatnonzero(y == c)[:per_class] for c in classes]
    index = np.concatenate(chosen).astype(np.int64)
    if not len(index):
        raise ValueError("reconstructions needs test images; x is empty.")
    inputs = keras.ops.convert_to_numpy(data.to_float(x[index]))
    _, outputs = reconstruct(model, x[index])
    grid = np.ones((2 * len(classes), per_class, *inputs.shape[1:]), np.float32)
    start = 0
    for row, picked in enumerate(chosen):
        grid[2 * row, :len(picked)] = inputs[start:start + len(picked)]
        grid[2 * row + 1, :len(picked)] = outputs[start:start + len(picked)]
        start += len(picked)
    labels = [label for c in classes for label in (names[c], "reconstructed")]
    figure = _figure(2.0 + 0.8 * per_class, 0.8 + 0.75 * len(labels))
    ax = figure.subplots()
    _show_images(ax, tile(grid), labels, inputs.shape[1])
    ax.set_title("Test images and their reconstructions from p(X|Y,Z), branch 1" + note +
                 "\ny = the predicted class q(Y|X) (one-hot), z = the mean of q(Z|X,Y)",
                 fontsize="medium")
    return _save(figure, path)


def class_samples(decoder: keras.Model, path: str, *, per_class: int = 8, seed: int = 0,
                  class_names=None) -> str:
    """Writes samples of p(X|Y,Z) (`decoder`): a row per class Y, Z ~ N(0, I) seeded."""
    if len(decoder.outputs[0].shape) != 4:
        raise ValueError("class_samples draws images; this decoder outputs vectors.")
    num_classes = decoder.inputs[1].shape[-1]
    names = _class_names(class_names, num_classes)
    classes, note = _image_classes(num_classes)
    samples = sample_images(decoder, classes, per_class, seed)
    figure = _figure(2.0 + 0.8 * per_class, 0.8 + 0.75 * len(classes))
    ax = figure.subplots()
    _show_images(ax, tile(samples), [names[c] for c in classes], samples.shape[2])
    ax.set_title(f"Samples of p(X|Y,Z) per class Y, Z ~ N(0, I) (seed {seed}){note}",
                 fontsize="medium")
    return _save(figure, path)


def top_label_issues(x, issues: "label_issues.LabelIssues", path: str, *, top: int = 32, per_row: int = 8,
                 class_names=None) -> str:
    """Writes the `top` likeliest mislabelled examples (images), likeliest first,
    each titled with its given label, predicted clean label and score."""
    if np.ndim(x) not in (3, 4):
        raise ValueError("label_issues draws images; x holds vectors.")
    names = _class_names(class_names, issues.probabilities.shape[1])
    shown = issues.ranking[:top]
    if not len(shown):
        raise ValueError("label_issues needs at least one example.")
    images = np.clip(keras.ops.convert_to_numpy(data.to_float(x[shown])), 0.0, 1.0)
    rows = -(-len(shown) // per_row)
    figure = _figure(1.5 * per_row, 0.6 + 1.75 * rows)
    axes = figure.subplots(rows, per_row, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, i in zip(axes.flat, images, shown):
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(f"#{i}: given {names[issues.given[i]]}\nlikely {names[issues.predicted[i]]}, "
                     f"{issues.score[i]:.2f}", fontsize="x-small")
    figure.suptitle(f"The {len(shown)} likeliest wrong labels ({issues.method}): example, given label, "
                    "most probable clean label, score", fontsize="medium")
    return _save(figure, path)


# ----------------------------------------------------------------------------
# A run's pictures.


def dataset_class_names(dataset: data.Dataset) -> Sequence[str] | None:
    """The dataset's class names where known (its own, or `CLASS_NAMES`), else None."""
    return getattr(dataset, "class_names", None) or CLASS_NAMES.get(dataset.name)


def _read_json(path: str):
    with open(path) as f:
        return json.load(f)


def _estimated_transition(workdir, model, x_train, clean_labels, seed, max_examples):
    """(matrix, label) of the run's own estimate of P(Y~|Y), or (None, None)."""
    if isinstance(model, CausalNL) and x_train is not None and len(x_train):
        keep = np.sort(np.random.default_rng(seed).permutation(len(x_train))[:max_examples])
        x = x_train[keep]
        if clean_labels is not None:
            classes, source = np.asarray(clean_labels)[keep], "true clean label"
        else:
            classes = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
            source = "classifier's prediction"
        probabilities = noisy_label_probabilities(model, x, classes)
        label = (f"CausalNL p({_NOISY}|Y,X), mean per clean class\n"
                 f"(clean class = {source}, {len(keep)} examples)")
        return average_per_class(probabilities, classes, model.num_classes), label
    estimate_path = os.path.join(workdir, "noise_estimate.json")
    if os.path.exists(estimate_path):
        return np.asarray(_read_json(estimate_path)["estimate"]["transition"]), "anchor-point estimate"
    return None, None


def _true_transition(workdir, noisy_labels, clean_labels, num_classes):
    if noisy_labels is not None and clean_labels is not None:
        return noise.transition_matrix(clean_labels, noisy_labels, num_classes)
    report_path = os.path.join(workdir, "noise.json")
    if os.path.exists(report_path):
        return np.asarray(_read_json(report_path)["transition"])
    return None


def write_pictures(
    workdir: str,
    model: keras.Model,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    x_train: np.ndarray | None = None,
    noisy_labels: np.ndarray | None = None,
    clean_labels: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    seed: int = 0,
    max_examples: int = TRANSITION_MAX_EXAMPLES,
) -> list[str]:
    """Writes every picture that applies to a run into `<workdir>/pictures/`.

    Args:
      workdir: the run's work directory; its metrics.csv, noise.json and
        noise_estimate.json are read when present.
      model: the trained model (CausalNL or a baseline).
      x_test, y_test: test inputs and clean test labels.
      x_train: training inputs, for CausalNL's transition estimate.
      noisy_labels, clean_labels: training labels; with both, the true
        transition is computed from them, else read from noise.json. Without
        clean labels CausalNL's estimate groups examples by predicted class.
      class_names: names of the classes, or None to show class ids.
      seed: seeds the samples of Z and the subset of training examples.
      max_examples: training examples CausalNL's transition is averaged over.

    Returns:
      The paths written.
    """
    directory = os.path.join(workdir, "pictures")
    os.makedirs(directory, exist_ok=True)
    path = lambda name: os.path.join(directory, name)
    num_classes = int(model.classifier.output_shape[-1])
    written = []

    metrics_path = os.path.join(workdir, "metrics.csv")
    metrics = read_metrics(metrics_path) if os.path.exists(metrics_path) else {}
    if metrics and curve_panels(list(metrics)):
        written.append(training_curves(metrics, path("training_curves.png")))

    if len(x_test):
        predicted = np.argmax(model.predict(x_test, batch_size=256, verbose=0), axis=-1)
        written.append(confusion_matrix(y_test, predicted, num_classes, path("confusion_matrix.png"),
                                        class_names=class_names))

    estimated, label = _estimated_transition(workdir, model, x_train, clean_labels, seed, max_examples)
    true_matrix = _true_transition(workdir, noisy_labels, clean_labels, num_classes)
    if estimated is not None or true_matrix is not None:
        written.append(transition(estimated, true_matrix, path("transition.png"),
                                  estimate_label=label or "estimate", class_names=class_names))

    if isinstance(model, CausalNL) and is_image_model(model):
        if len(x_test):
            written.append(reconstructions(model, x_test, y_test, path("reconstructions.png"),
                                           class_names=class_names))
        written.append(class_samples(model.decoders[0], path("class_samples.png"), seed=seed,
                                     class_names=class_names))
    return written


def run_data(config: ml_collections.ConfigDict) -> tuple[data.Dataset, np.ndarray]:
    """The run's dataset and noisy training labels, rebuilt from its config.

    The one place this module depends on how training loads data.
    """
    from tf_causalnl import training  # noqa: PLC0415 (training calls write_pictures)

    dataset, noisy, _ = training.load_noisy_data(config)
    return dataset, noisy


def require_workdir(workdir: str) -> dict:
    """The run's config, or a clear error saying what is missing and how to make it."""
    make = f"Make one with `{_TRAIN_COMMAND.format(workdir)}`."
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"There is no work directory {workdir}. {make}")
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{workdir} has no config.json, so it is not a training work "
                                f"directory. {make}")
    try:
        return _read_json(config_path)
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_path} is not valid JSON ({error}); retrain into a new work "
                         f"directory with `{_TRAIN_COMMAND.format('<new workdir>')}`.") from error


def load_run_model(workdir: str) -> keras.Model:
    """model.keras, or checkpoint.keras (the last completed epoch) when training did not finish."""
    final, checkpoint = (os.path.join(workdir, n) for n in ("model.keras", "checkpoint.keras"))
    if os.path.exists(final):
        return keras.saving.load_model(final)
    if os.path.exists(checkpoint):
        _log.warning("%s has no model.keras (training did not finish); drawing the model of the "
                     "last completed epoch, checkpoint.keras.", workdir)
        return keras.saving.load_model(checkpoint)
    raise FileNotFoundError(
        f"{workdir} has neither model.keras nor checkpoint.keras: training has not completed an "
        f"epoch. Rerun the train command that made it (`{_TRAIN_COMMAND.format(workdir)}`); it "
        "resumes where it stopped.")


def _saved_noisy_labels(workdir: str, rebuilt: np.ndarray) -> np.ndarray | None:
    """The rebuilt noisy labels if they match noisy_labels.npy; else None, saying so."""
    path = os.path.join(workdir, "noisy_labels.npy")
    if not os.path.exists(path):
        _log.warning("%s is missing; the noisy labels rebuilt from config.json are used.", path)
        return rebuilt
    saved = np.load(path)
    if saved.shape == rebuilt.shape and np.array_equal(saved, rebuilt):
        return rebuilt
    differ = (f"{int(np.sum(saved != rebuilt))} of {len(saved)} labels differ"
              if saved.shape == rebuilt.shape else f"{len(saved)} saved, {len(rebuilt)} rebuilt")
    _log.warning(
        "The noisy labels rebuilt from %s/config.json do not match the run's noisy_labels.npy "
        "(%s): the data or the noise code changed since training. The true transition is read "
        "from noise.json, and the pictures of training data may not show what the run saw.",
        workdir, differ)
    return None


def pictures_from_workdir(workdir: str) -> list[str]:
    """Writes the pictures of a saved run (`write_pictures`) and returns their paths.

    Rebuilds the data from config.json (deterministic), checks the noisy labels
    against noisy_labels.npy, and loads model.keras (checkpoint.keras when
    training did not finish).

    Raises:
      FileNotFoundError: `workdir` is not a work directory, or holds no model.
    """
    from tf_causalnl import training  # noqa: PLC0415 (training calls write_pictures)

    config = ml_collections.ConfigDict(require_workdir(workdir))
    model = load_run_model(workdir)
    if config.data.name in training.FILE_DATASETS:  # Clothing1M: images stay in their files
        return training.write_pictures(workdir, model, training.file_inputs(config),
                                       int(config.get("seed", 0)))
    dataset, noisy = run_data(config)
    return write_pictures(
        workdir, model, dataset.x_test, dataset.y_test,
        x_train=dataset.x_train,
        noisy_labels=_saved_noisy_labels(workdir, noisy),
        clean_labels=dataset.y_train,
        class_names=dataset_class_names(dataset),
        seed=int(config.get("seed", 0)),
    )
