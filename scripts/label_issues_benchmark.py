"""Which labels are wrong: CausalNL's posterior against cleanlab, on real FashionMNIST.

    pip install -e ".[benchmark]"   # cleanlab 2.9 and pandas
    python scripts/label_issues_benchmark.py --workdir runs/label_issues_benchmark \\
        --models_from runs/fmnist_grid_cpu3

On the CPU protocol (configs/fmnist_grid_cpu.py: 3,000 training images, the
small CNN, 12 epochs), for each noise case and seed, the detectors score
every training label by how likely it is wrong:
  - causalnl_posterior: CausalNL's P(Y != y~ | x, y~) from q(Y|X) and T(x)
    (`tf_causalnl.label_issues`); its issue set: the most probable clean
    label is not the given one;
  - causalnl_posterior_both_branches: the same, q(Y|X) and T(x) averaged over
    CausalNL's two branches (`both_branches=True`);
  - causalnl_q: CausalNL's q(Y|X) alone (self-confidence): the posterior
    without T(x), an ablation;
  - coteaching: Co-teaching's classifier, self-confidence;
  - cleanlab_cv_ce: cleanlab 2.9 on 5-fold cross-validated probabilities of
    a CE classifier (the same network and epochs): `get_label_quality_scores`
    and `find_label_issues`, with their defaults and with the best of their
    options on these data (chosen on the same data, so it flatters cleanlab);
  - cleanlab_causalnl: cleanlab fed CausalNL's q(Y|X).
Each: AUROC and average precision of the score against "label is flipped"
(undefined on clean labels), precision, recall and F1 of the issue set, the
share of labels it flags, and the score's calibration error as a probability
that the label is wrong (`label_issues.calibration_error`); a reliability
table pools every case and seed. T(x): the mean total-variation
distance between estimated and true rows P(Y~ | x, Y = clean label), for
CausalNL's T(x) (branch 1, both branches, and its class-level average over
the predicted clean class), the anchor-point estimate (`tf_causalnl.transition`),
cleanlab's estimated joint, and the true class-level transition (the best any
class-level estimate can do). Noise rate: CausalNL's mean posterior, the
anchor-point and cleanlab estimates, against the realised rate.

Models come from `--models_from` (a grid work directory, whose stored
training config the script then uses for any cell it trains itself) where it
has the cell, else are trained into `--workdir` (resumable, as a grid);
`--causalnl auto` scores the CausalNL of the library's defaults (the forget
rate estimated) instead of the one given the noise rate. Prints one table of
means and standard deviations over seeds; writes the per-seed rows to
<workdir>/results.csv (`--report_only` prints the tables of that file again).
"""

import copy
import csv
import io
import json
import os
import time

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

import keras  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from cleanlab.count import estimate_joint, num_label_issues  # noqa: E402
from cleanlab.filter import find_label_issues as cleanlab_issues  # noqa: E402
from cleanlab.rank import get_label_quality_scores  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from tf_causalnl import config as config_lib  # noqa: E402
from tf_causalnl import data, noise, training  # noqa: E402
from tf_causalnl.reports import label_issues
from tf_causalnl.checkpoints import write_bytes  # noqa: E402
from tf_causalnl.checkpoints import load_run_model  # noqa: E402
from tf_causalnl.experiments import grid_cells  # noqa: E402
from tf_causalnl.training import checks  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", "runs/label_issues_benchmark", "Where models and results go.")
_MODELS_FROM = flags.DEFINE_string("models_from", "", "A grid work directory whose cells to reuse.")
_CASES = flags.DEFINE_list("cases", ["idn:0.45", "idn:0.2", "symmetric:0.4"], "noise_type:rate cases.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1"], "Seeds.")
_FOLDS = flags.DEFINE_integer("folds", 5, "Cross-validation folds for cleanlab's CE probabilities.")
_CAUSALNL = flags.DEFINE_enum("causalnl", grid_cells.ORACLE, [grid_cells.ORACLE, grid_cells.AUTO],
                              "Which CausalNL cell: the forget rate set to the noise rate, or estimated "
                              "(auto, the library's default).")
_REPORT_ONLY = flags.DEFINE_boolean("report_only", False, "Print the tables of <workdir>/results.csv; train nothing.")

QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")


#: Equal-width bins of a score in [0, 1] for the reliability table and the calibration error.
BINS = 10


def detection(score, issue_set, flipped) -> dict:
    """AUROC and average precision of `score`, precision/recall/F1 of `issue_set`, against `flipped`;
    the share of labels the set flags; the score's expected calibration error as a probability
    that the label is wrong (`BINS` bins). AUROC and AP are undefined (NaN) without flipped labels."""
    hits = int(np.sum(issue_set & flipped))
    precision = hits / max(int(issue_set.sum()), 1)
    recall = hits / max(int(flipped.sum()), 1)
    both_kinds = 0 < flipped.sum() < len(flipped)
    return {"auroc": roc_auc_score(flipped, score) if both_kinds else float("nan"),
            "ap": average_precision_score(flipped, score) if both_kinds else float("nan"),
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / max(precision + recall, 1e-12),
            "flagged": float(np.mean(issue_set)),
            "ece": label_issues.calibration_error(score, flipped, BINS)}


def total_variation(estimated_rows, true_rows) -> float:
    """The mean over examples of 1/2 sum_j |estimated - true|."""
    return float(np.mean(0.5 * np.abs(estimated_rows - true_rows).sum(axis=1)))


def cleanlab_scores(given, probabilities, flipped, quality="self_confidence", filter_by="prune_by_noise_rate"):
    score = 1.0 - get_label_quality_scores(given, probabilities, method=quality)
    issue_set = np.zeros(len(given), bool)
    issue_set[cleanlab_issues(given, probabilities, filter_by=filter_by)] = True
    return detection(score, issue_set, flipped)


def cleanlab_transition(given, probabilities) -> np.ndarray:
    """T[y, y~] from cleanlab's joint P(given = i, true = j) (rows given, columns true)."""
    joint = estimate_joint(given, probabilities)
    return (joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-12)).T


def _estimates_dir() -> str:
    """The anchor-point estimates' cache: the reused grid's where given (same keys), else ours."""
    return os.path.join(_MODELS_FROM.value or _WORKDIR.value, "estimates")


def cell_dir(cell) -> str:
    """The cell in --models_from where that grid has it (waiting for it to finish if
    it is still training there), else the one in --workdir (trained if need be)."""
    if _MODELS_FROM.value:
        reused = os.path.join(_MODELS_FROM.value, cell.workdir)
        with open(os.path.join(_MODELS_FROM.value, "grid_config.json")) as f:
            in_grid = cell in grid_cells.cells(ml_collections.ConfigDict(json.load(f)))
        while in_grid and not os.path.exists(os.path.join(reused, "results.json")):
            print(f"waiting for the grid's cell {reused}", flush=True)
            time.sleep(60)
        if in_grid:
            return reused
    return os.path.join(_WORKDIR.value, cell.workdir)


def trained_model(base, cell):
    directory = cell_dir(cell)
    if not os.path.exists(os.path.join(directory, "results.json")):
        training.train(grid_cells.cell_config(base, cell, _estimates_dir()), directory)
    return load_run_model(directory, unfinished_ok=True), directory


def cross_validated_probabilities(config, dataset, given, folds, path) -> np.ndarray:
    """Out-of-sample P(Y~|x) of CE classifiers, `folds`-fold, stratified; cached at `path`."""
    if os.path.exists(path):
        return np.load(path)
    ce = copy.deepcopy(config)
    ce.model.method = "ce"
    probabilities = np.zeros((len(given), dataset.num_classes), np.float32)
    splits = StratifiedKFold(folds, shuffle=True, random_state=config.seed).split(dataset.x_train, given)
    for fold, (train, held_out) in enumerate(splits):
        keras.utils.set_random_seed(config.seed * 100 + fold)
        model = training.build_model(ce, dataset.input_shape, dataset.num_classes)
        pipeline = data.train_dataset(dataset.x_train[train], given[train], batch_size=config.train.batch_size,
                                      seed=config.seed + fold, augment=config.data.augment,
                                      crop_padding=config.data.crop_padding, flip=config.data.flip,
                                      initial_epoch=0)
        model.fit(pipeline, epochs=config.train.epochs,
                  steps_per_epoch=data.steps_per_epoch(len(train), config.train.batch_size), verbose=0)
        probabilities[held_out] = model.predict(dataset.x_train[held_out], batch_size=256, verbose=0)
        keras.backend.clear_session(free_memory=False)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, probabilities)
    return probabilities


def measure(base, noise_type, rate, seed) -> list[dict]:
    """The rows of one case and seed: one per detector, plus the T(x) and noise-rate rows."""
    cells = {"causalnl": grid_cells.Cell("causalnl", _CAUSALNL.value, noise_type, rate, seed),
             "coteaching": grid_cells.Cell("coteaching", grid_cells.ORACLE, noise_type, rate, seed)}
    config = grid_cells.cell_config(base, cells["causalnl"], _estimates_dir())
    dataset, given, report = training.load_noisy_data(config)
    causalnl, directory = trained_model(base, cells["causalnl"])
    saved = np.load(os.path.join(directory, "noisy_labels.npy"))
    if not np.array_equal(saved, given):
        raise SystemExit(f"{directory}: its noisy labels differ from the rebuilt ones; retrain it.")
    coteaching, _ = trained_model(base, cells["coteaching"])
    clean = dataset.y_train
    flipped = given != clean
    true_rows = training.true_transition_rows(config, dataset)

    posterior = label_issues.find_label_issues(causalnl, dataset.x_train, given)
    both = label_issues.find_label_issues(causalnl, dataset.x_train, given, both_branches=True)
    own_q = label_issues.scores_from(posterior.probabilities, given, "self_confidence")
    peer = label_issues.find_label_issues(coteaching, dataset.x_train, given)
    case = os.path.join(_WORKDIR.value, "cv", f"{noise_type}-{rate:g}", f"seed{seed}")
    cv_path = os.path.join(case, "probabilities.npy")
    cv = cross_validated_probabilities(config, dataset, given, _FOLDS.value, cv_path).astype(np.float64)

    results = {
        "causalnl_posterior": detection(posterior.score, posterior.is_issue, flipped),
        "causalnl_posterior_both_branches": detection(both.score, both.is_issue, flipped),
        "causalnl_q": detection(own_q.score, own_q.is_issue, flipped),
        "coteaching": detection(peer.score, peer.is_issue, flipped),
        "cleanlab_cv_ce": cleanlab_scores(given, cv, flipped),
        "cleanlab_causalnl": cleanlab_scores(given, posterior.probabilities, flipped),
    }
    for quality in QUALITY_METHODS:
        for filter_by in FILTERS:
            name = f"cleanlab_cv_ce[{quality},{filter_by}]"
            results[name] = cleanlab_scores(given, cv, flipped, quality, filter_by)

    estimate = training.estimate_noise(config, dataset, given, case)
    class_level = {
        "causalnl_t_of_x": posterior.transition[np.arange(len(clean)), clean],
        "causalnl_t_of_x_both_branches": both.transition[np.arange(len(clean)), clean],
        "causalnl_class_level": posterior.class_transition()[clean],
        "anchor_point": estimate.transition[clean],
        "cleanlab_joint": cleanlab_transition(given, cv)[clean],
        "true_class_level": noise.transition_matrix(clean, given, dataset.num_classes)[clean],
    }
    tv = {name: total_variation(rows, true_rows) for name, rows in class_level.items()}
    rates = {"realised": report.realized_rate, "causalnl_mean_posterior": posterior.noise_rate,
             "causalnl_issue_share": float(posterior.is_issue.mean()),
             "causalnl_mean_posterior_both_branches": both.noise_rate,
             "anchor_point": float(estimate.noise_rate),
             "cleanlab_cv_ce": num_label_issues(given, cv) / len(given)}
    key = {"noise": f"{noise_type}-{rate:g}", "seed": seed}
    scores = {"causalnl_posterior": posterior.score, "coteaching": peer.score,
              "cleanlab_cv_ce": 1.0 - get_label_quality_scores(given, cv, method="self_confidence")}
    bins = [{**key, "kind": "reliability", "name": n, "examples": count, "mean_score": mean, "flipped": share}
            for n, value in scores.items() for count, mean, share in label_issues.reliability(value, flipped, BINS)]
    return ([{**key, "kind": "detection", "name": n, **v} for n, v in results.items()] + bins
            + [{**key, "kind": "transition_tv", "name": n, "value": v} for n, v in tv.items()]
            + [{**key, "kind": "noise_rate", "name": n, "value": v} for n, v in rates.items()])


def summary(rows) -> str:
    """Mean (sd) over seeds of every figure, one Markdown table per kind."""
    def stat(values):
        values = np.asarray([v if isinstance(v, (int, float)) else np.nan for v in values], float)
        values = values[np.isfinite(values)]  # AUROC and AP on clean labels: undefined
        if not len(values):
            return "n/a"
        return f"{values.mean():.3f} ({values.std(ddof=1) if len(values) > 1 else 0:.3f})"

    rows = _best_cleanlab(rows)
    cases = list(dict.fromkeys(r["noise"] for r in rows))
    out = []
    for kind, fields in (("detection", ("auroc", "ap", "precision", "recall", "f1", "flagged", "ece")),
                         ("transition_tv", ("value",)), ("noise_rate", ("value",))):
        names = list(dict.fromkeys(r["name"] for r in rows if r["kind"] == kind))
        out.append(f"\n{kind} (mean (sd) over seeds)\n")
        out.append("| case | name | " + " | ".join(fields) + " | seeds |")
        out.append("|---|---|" + "---|" * (len(fields) + 1))
        for case in cases:
            for name in names:
                picked = [r for r in rows if r["kind"] == kind and r["noise"] == case and r["name"] == name]
                if picked:
                    out.append(f"| {case} | {name} | " + " | ".join(stat([r.get(f) for r in picked]) for f in fields)
                               + f" | {len(picked)} |")
    out.append(reliability_table(rows))
    return "\n".join(out)


def reliability_table(rows) -> str:
    """Every case and seed pooled: per bin of each score, the examples, their mean score and the share flipped."""
    pooled = {}
    for r in rows:
        if r["kind"] == "reliability":
            key = (r["name"], min(int(float(r["mean_score"]) * BINS), BINS - 1))
            n, total, flipped = pooled.get(key, (0, 0.0, 0.0))
            pooled[key] = (n + int(r["examples"]), total + r["examples"] * r["mean_score"],
                           flipped + r["examples"] * r["flipped"])
    if not pooled:
        return ""
    names = list(dict.fromkeys(name for name, _ in pooled))
    out = ["\nreliability (every case and seed pooled): examples, mean score, share flipped\n",
           "| score bin | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for b in range(BINS):
        cells = []
        for name in names:
            n, total, flipped = pooled.get((name, b), (0, 0.0, 0.0))
            cells.append(f"{n}: {total / n:.2f} / {flipped / n:.2f}" if n else "")
        out.append(f"| {b / BINS:.1f}-{(b + 1) / BINS:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _best_cleanlab(rows) -> list[dict]:
    """The rows with cleanlab's option variants replaced, per case, by the variant
    of the best mean AUROC (for the score) and that of the best mean F1 (for the set)."""
    variants = [r for r in rows if "[" in r["name"]]
    kept = [r for r in rows if "[" not in r["name"]]
    for case in dict.fromkeys(r["noise"] for r in variants):
        mine = [r for r in variants if r["noise"] == case]
        names = list(dict.fromkeys(r["name"] for r in mine))
        for field, label in (("auroc", "best score"), ("f1", "best set")):
            means = {name: np.mean([r[field] for r in mine if r["name"] == name]) for name in names}
            best = max(names, key=means.get)
            kept += [{**r, "name": f"cleanlab_cv_ce {label}: {best[len('cleanlab_cv_ce'):]}"}
                     for r in mine if r["name"] == best]
    return kept


def main(argv):
    del argv
    if _REPORT_ONLY.value:
        with open(os.path.join(_WORKDIR.value, "results.csv")) as f:
            rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
        print(summary(rows))
        return
    # The reused grid's training config (as stored, so that cells trained here match it), else the protocol.
    stored = checks.read_stored_config(os.path.join(_MODELS_FROM.value, "grid_config.json")) \
        if _MODELS_FROM.value else None
    base = config_lib.cpu_protocol()
    if stored:
        stored.pop("grid", None)
        base.update(stored)  # into base_config's fields, so that forget_rate still takes "auto"
    rows = []
    for case in _CASES.value:
        noise_type, rate = case.split(":")
        for seed in _SEEDS.value:
            rows += measure(base, noise_type, float(rate), int(seed))
            print(f"done: {case} seed {seed}", flush=True)
            _write_rows(rows)
    print(summary(rows))


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _write_rows(rows) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    os.makedirs(_WORKDIR.value, exist_ok=True)
    write_bytes(os.path.join(_WORKDIR.value, "results.csv"), buffer.getvalue().encode())


if __name__ == "__main__":
    app.run(main)
