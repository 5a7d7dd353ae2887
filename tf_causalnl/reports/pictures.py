"""Drawing a run's pictures with matplotlib: curves, confusion, transition, images.

Each function draws one PNG from arrays or a model and returns its path.
"""

from collections.abc import Mapping

import keras
import numpy as np

from tf_causalnl import data, noise
from tf_causalnl.checkpoints import write_atomically
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.reports import label_issues
from tf_causalnl.reports.probes import (confusion_counts, curve_panels, flip_rate, is_image_model, reconstruct,
                                        row_normalise, sample_images, tile)


#: Heatmaps of at most this many classes get a number in every cell.
ANNOTATE_MAX_CLASSES = 12
#: Heatmaps of at most this many classes name every class on the axes.
TICK_MAX_CLASSES = 20
#: The image pictures show at most this many classes, so rows stay legible.
IMAGE_MAX_CLASSES = 10
#: Ỹ, the noisy label, in matplotlib's mathtext.
NOISY_LABEL = r"$\tilde{Y}$"
_CURVE_LABELS = {
    "loss": "training loss",
    "val_loss": "test cross-entropy (val_loss)",
    "val_accuracy": "clean test (val_accuracy)",
    "accuracy": "train, noisy labels (accuracy)",
    "clean_accuracy": "train, clean labels (clean_accuracy)",
}


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
        image = _heatmap(ax, matrix, title, names, text, f"noisy label {NOISY_LABEL}", "clean class Y")
    figure.colorbar(image, ax=list(axes), shrink=0.8, label=f"P({NOISY_LABEL} | Y)")
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
    y = noise.check_labels(y, model.num_classes, "y", classes_name=None)
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
