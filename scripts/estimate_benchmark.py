"""How close the noise-rate estimate from noisy labels alone comes to the realised rate, and why.

    python scripts/estimate_benchmark.py --config configs/fmnist_spectrum_cpu.py \\
        --workdir runs/estimate_benchmark --seeds 0,1,2

For each noise case of the grid config (its `grid.cases`, or types x rates)
and seed, the script rebuilds the run's noisy labels, trains the classifier
that `forget_rate="auto"` reads (`models.estimate.train_noisy_label_classifier`:
the config's classifier, `estimate.epochs` of cross-entropy, its best epoch
on a noisy 10% holdout) and two more on a 2-fold split (each half's
probabilities from the classifier trained on the other half). It caches the
probabilities in <workdir>/<case>-seed<s>.npz and prints (and writes to
<workdir>/results.md), per case, the
realised rate against the estimators:
  - anchor_97: the library's (`noise.estimation.estimate_from_probabilities`
    at the 97th percentile, on the probabilities of every training example);
  - anchor_95, anchor_99: the same at another percentile;
  - anchor_97_mean_of_3: the mean of the library's estimate from three such
    classifiers (other initial weights and batch order; the same split);
  - anchor_97_cross_fitted: the library's on the 2-fold out-of-sample probabilities;
  - confident_learning: the count of Northcutt et al. (2021), calibrated to the
    label counts, on the out-of-sample probabilities;
  - disagreement: the share of labels the out-of-sample argmax disagrees with;
  - the noisy classifier's clean test accuracy, the ceiling every estimate
    that reads it works under.
Then the mean error, mean absolute error and largest error of each over
every case and seed.
"""

import os

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from tf_causalnl.checkpoints import write_bytes  # noqa: E402
from tf_causalnl.experiments import grid_cells  # noqa: E402
from tf_causalnl.models.estimate import train_noisy_label_classifier  # noqa: E402
from tf_causalnl.noise import estimation  # noqa: E402
from tf_causalnl.training import inputs, registry  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "A grid config: its noise cases and training config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/estimate_benchmark", "Where the probabilities are cached.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.mark_flags_as_required(["config"])

ESTIMATORS = ("anchor_97", "anchor_95", "anchor_99", "anchor_97_mean_of_3", "anchor_97_cross_fitted",
              "confident_learning", "disagreement")
#: Classifiers of `anchor_97_mean_of_3`: the library's and two more from other initial weights.
MEMBERS = 3


def probabilities(config, path: str) -> dict:
    """The case's labels and probabilities, from `path`, or trained (what is missing) and cached there."""
    result = dict(np.load(path)) if os.path.exists(path) else {}
    if "members" in result:
        return result
    dataset, noisy, _ = inputs.load_noisy_data(config)
    x, seed = dataset.x_train, config.seed
    classifier = registry.build_classifier(config, dataset.input_shape, dataset.num_classes)

    def train(rows, weights_seed):
        keras.utils.set_random_seed(weights_seed)
        return train_noisy_label_classifier(
            classifier, x[rows], noisy[rows], epochs=config.estimate.epochs, batch_size=config.train.batch_size,
            learning_rate=config.train.learning_rate, holdout=config.estimate.holdout, seed=seed)

    if not result:
        everything = train(np.arange(len(noisy)), seed)
        out_of_sample = np.zeros((len(noisy), dataset.num_classes), np.float32)
        halves = np.array_split(np.random.default_rng(seed).permutation(len(noisy)), 2)
        for k in (0, 1):
            out_of_sample[halves[k]] = train(halves[1 - k], seed).predict(x[halves[k]], batch_size=1000, verbose=0)
        result = {"noisy": noisy, "clean": dataset.y_train, "out_of_sample": out_of_sample,
                  "all": everything.predict(x, batch_size=1000, verbose=0),
                  "test_accuracy": np.mean(everything.predict(dataset.x_test, batch_size=1000, verbose=0)
                                           .argmax(1) == dataset.y_test)}
    # The same split and epochs as the first; other initial weights and batch order.
    result["members"] = np.stack([result["all"]] + [
        train(np.arange(len(noisy)), seed + 1000 * k).predict(x, batch_size=1000, verbose=0)
        for k in range(1, MEMBERS)])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, **result)
    return result


def confident_learning_rate(p: np.ndarray, noisy: np.ndarray) -> float:
    """The off-diagonal share of confident learning's calibrated joint (Northcutt et al., 2021):
    an example counts for the likeliest class whose probability reaches that class's mean
    self-confidence; each row is rescaled to its label's count."""
    c = p.shape[1]
    thresholds = np.array([p[noisy == j, j].mean() if np.any(noisy == j) else 1.0 for j in range(c)])
    above = p >= thresholds[None, :]
    counted = above.any(axis=1)
    true = np.where(above, p, -1.0).argmax(axis=1)
    joint = np.zeros((c, c))
    np.add.at(joint, (noisy[counted], true[counted]), 1.0)
    joint *= (np.bincount(noisy, minlength=c) / np.maximum(joint.sum(axis=1), 1.0))[:, None]
    return float(1.0 - np.trace(joint) / joint.sum())


def estimates(case: dict) -> dict:
    noisy, c = case["noisy"], case["all"].shape[1]

    def anchor(p, percentile):
        return estimation.estimate_from_probabilities(p, noisy, c, percentile).noise_rate

    return {"anchor_97": anchor(case["all"], 97.0), "anchor_95": anchor(case["all"], 95.0),
            "anchor_99": anchor(case["all"], 99.0),
            "anchor_97_mean_of_3": float(np.mean([anchor(p, 97.0) for p in case["members"]])),
            "anchor_97_cross_fitted": anchor(case["out_of_sample"], 97.0),
            "confident_learning": confident_learning_rate(case["out_of_sample"], noisy),
            "disagreement": float(np.mean(case["out_of_sample"].argmax(axis=1) != noisy))}


def main(argv):
    del argv
    grid = _CONFIG.value
    rows = []
    for noise_type, rate in grid_cells.noise_cases(grid):
        for seed in map(int, _SEEDS.value):
            config = grid_cells.cell_config(grid, grid_cells.Cell("ce", grid_cells.ORACLE, noise_type, rate, seed))
            case = probabilities(config, os.path.join(_WORKDIR.value, f"{noise_type}-{rate:g}-seed{seed}.npz"))
            realised = float(np.mean(case["noisy"] != case["clean"]))
            rows.append({"case": f"{noise_type}-{rate:g}", "seed": seed, "realised": realised,
                         "test_accuracy": float(case["test_accuracy"]), **estimates(case)})
            print(f"done: {noise_type}-{rate:g} seed {seed}", flush=True)
    lines = ["| case | realised | " + " | ".join(ESTIMATORS) + " | noisy classifier's test accuracy |",
             "|---|---|" + "---|" * (len(ESTIMATORS) + 1)]
    for name in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == name]
        cells = [np.mean([100 * r[k] for r in mine]) for k in ("realised", *ESTIMATORS, "test_accuracy")]
        lines.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in cells) + " |")
    lines += ["", f"Rates in %, means over seeds {', '.join(_SEEDS.value)}. Error over {len(rows)} cases x seeds, "
              "points: mean / mean absolute / largest absolute / spread within a case (sample std of the "
              "error over seeds, pooled over cases)", ""]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    for name in ESTIMATORS:
        errors = np.array([100 * (r[name] - r["realised"]) for r in rows])
        within = np.concatenate([errors[[r["case"] == c for r in rows]] - errors[[r["case"] == c for r in rows]].mean()
                                 for c in cases])
        spread = np.sqrt(np.sum(within ** 2) / max(len(rows) - len(cases), 1))
        lines.append(f"- {name}: {errors.mean():+.1f} / {np.abs(errors).mean():.1f} / {np.abs(errors).max():.1f} / "
                     f"{spread:.1f}")
    text = "\n".join(lines) + "\n"
    print(text)
    write_bytes(os.path.join(_WORKDIR.value, "results.md"), text.encode("utf-8"))


if __name__ == "__main__":
    app.run(main)
