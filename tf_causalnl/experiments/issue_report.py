"""A run's suspected label issues on disk: label_issues.csv and a picture of the top ones.

    python scripts/label_issues.py --workdir runs/fmnist_idn45_cpu

`report_from_workdir` rebuilds the run's training data from config.json,
takes the labels the run trained on (noisy_labels.npy), loads its model and
scores every training label (`label_issues.find_label_issues`); then
`write_report` writes, each atomically:

  label_issues.csv              one row per training example: index, given
                                label, predicted (most probable clean) label,
                                score, rank (1 = likeliest wrong), is_issue,
                                the T(x) row at the predicted class (t0 ..),
                                and the clean label where the run's noise is
                                synthetic (so it is known)
  pictures/label_issues.png     the likeliest wrong labels, with their images
"""

from __future__ import annotations

import csv
import io
import os

import ml_collections
import numpy as np

from tf_causalnl.reports import label_issues
from tf_causalnl import checkpoints
from tf_causalnl.checkpoints import write_bytes
from tf_causalnl.reports import pictures, run_pictures
from tf_causalnl.experiments import run_reports
from tf_causalnl.training import registry

CSV_NAME = "label_issues.csv"
PICTURE_NAME = "label_issues.png"


def csv_text(issues: label_issues.LabelIssues, clean_labels: np.ndarray | None = None) -> str:
    """The CSV of `issues.columns()` (and a clean_label column when known)."""
    columns = issues.columns()
    if clean_labels is not None:
        columns["clean_label"] = np.asarray(clean_labels)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in zip(*columns.values()):
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def write_report(workdir: str, issues: label_issues.LabelIssues, x: np.ndarray, *,
                 clean_labels: np.ndarray | None = None, class_names=None, top: int = 32) -> list[str]:
    """Writes label_issues.csv into `workdir` and, for images, pictures/label_issues.png."""
    written = [os.path.join(workdir, CSV_NAME)]
    write_bytes(written[0], csv_text(issues, clean_labels).encode())
    if np.ndim(x) in (3, 4) and top > 0:
        os.makedirs(os.path.join(workdir, "pictures"), exist_ok=True)
        written.append(pictures.top_label_issues(x, issues, os.path.join(workdir, "pictures", PICTURE_NAME),
                                             top=top, class_names=class_names))
    return written


def report_from_workdir(workdir: str, *, score: str | None = None, top: int = 32,
                        batch_size: int = 256, verbose: int | str = "auto"):
    """Scores a saved run's training labels and writes its report (`write_report`).

    Returns:
      (the `LabelIssues`, the paths written, the clean training labels or
      None where unknown).

    Raises:
      FileNotFoundError: `workdir` is not a run's work directory or holds no model.
      ValueError: a dataset of image files (Clothing1M), which this command
        does not read yet, or a score the model cannot give.
    """
    config = ml_collections.ConfigDict(run_reports.require_workdir(workdir))
    if config.data.name in registry.FILE_DATASETS:
        raise ValueError(f"{config.data.name} keeps its images in files; score its labels from Python with "
                         "tf_causalnl.label_issues.find_label_issues(model, dataset).")
    model = checkpoints.load_run_model(workdir, unfinished_ok=True)
    dataset, rebuilt = run_reports.run_data(config)
    saved_path = os.path.join(workdir, "noisy_labels.npy")
    given = np.load(saved_path) if os.path.exists(saved_path) else rebuilt
    if len(given) != len(dataset.x_train):
        raise ValueError(f"{saved_path} holds {len(given)} labels but the rebuilt training set has "
                         f"{len(dataset.x_train)} images: the data changed since training; retrain.")
    issues = label_issues.find_label_issues(model, dataset.x_train, given, score=score,
                                            batch_size=batch_size, verbose=verbose)
    # With synthetic noise the dataset's own labels are the clean ones; without, they are the given ones.
    clean = dataset.y_train if config.noise.rate > 0 else None
    written = write_report(workdir, issues, dataset.x_train, clean_labels=clean,
                           class_names=run_pictures.dataset_class_names(dataset), top=top)
    return issues, written, clean
