"""All the pictures of one run, from its model, its arrays and its metrics.csv.

Called by training at the end of a run; `tf_causalnl.experiments.run_reports`
redraws them from a finished work directory.
"""

import json
import os
from collections.abc import Sequence

import keras
import numpy as np

from tf_causalnl import data, noise
from tf_causalnl.models.causalnl import CausalNL
from tf_causalnl.reports.pictures import (NOISY_LABEL, class_samples, confusion_matrix, reconstructions,
                                          training_curves, transition)
from tf_causalnl.reports.probes import (CLASS_NAMES, average_per_class, curve_panels, is_image_model,
                                        noisy_label_probabilities, read_metrics)


#: CausalNL's transition is averaged over at most this many training examples.
TRANSITION_MAX_EXAMPLES = 2000


def dataset_class_names(dataset: data.Dataset) -> Sequence[str] | None:
    """The dataset's class names where known (its own, or `CLASS_NAMES`), else None."""
    return getattr(dataset, "class_names", None) or CLASS_NAMES.get(dataset.name)


def read_json(path: str):
    """The JSON file at `path`."""
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
        label = (f"CausalNL p({NOISY_LABEL}|Y,X), mean per clean class\n"
                 f"(clean class = {source}, {len(keep)} examples)")
        return average_per_class(probabilities, classes, model.num_classes), label
    estimate_path = os.path.join(workdir, "noise_estimate.json")
    if os.path.exists(estimate_path):
        return np.asarray(read_json(estimate_path)["estimate"]["transition"]), "anchor-point estimate"
    return None, None


def _true_transition(workdir, noisy_labels, clean_labels, num_classes):
    if noisy_labels is not None and clean_labels is not None:
        return noise.transition_matrix(clean_labels, noisy_labels, num_classes)
    report_path = os.path.join(workdir, "noise.json")
    if os.path.exists(report_path):
        return np.asarray(read_json(report_path)["transition"])
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
