"""How CausalNL's T(x) compares with the true per-example transition on one grid cell.

    python scripts/transition_diagnostics.py --workdir runs/fmnist_grid_cpu3 --rate 0.2 --seed 0

Reads the cell `causalnl/idn-<rate>/seed<seed>` of a CPU-protocol grid work
directory (configs/fmnist_grid_cpu.py), rebuilds its data and noise, and
prints: the classifier's agreement with the clean and the given labels; the
mean posterior and the model's own flip rate; the correlation between T(x)'s
diagonal at the clean class and the true keep probability; and T(x) averaged
per clean class beside the true class-level transition.
"""

import os

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_causalnl import config as config_lib  # noqa: E402
from tf_causalnl import noise, training  # noqa: E402
from tf_causalnl.reports import label_issues
from tf_causalnl.checkpoints import load_run_model  # noqa: E402
from tf_causalnl.experiments import grid_cells

_WORKDIR = flags.DEFINE_string("workdir", "runs/fmnist_grid_cpu3", "A CPU-protocol grid work directory.")
_RATE = flags.DEFINE_float("rate", 0.2, "The IDN rate of the cell.")
_SEED = flags.DEFINE_integer("seed", 0, "The seed of the cell.")


def main(argv):
    del argv
    cell = grid_cells.Cell("causalnl", grid_cells.ORACLE, "idn", _RATE.value, _SEED.value)
    config = grid_cells.cell_config(config_lib.cpu_protocol(), cell)
    dataset, given, report = training.load_noisy_data(config)
    model = load_run_model(os.path.join(_WORKDIR.value, cell.workdir), unfinished_ok=True)
    issues = label_issues.find_label_issues(model, dataset.x_train, given)
    clean, rows = dataset.y_train, np.arange(len(given))
    true_rows = training.true_transition_rows(config, dataset)
    t, q = issues.transition, issues.probabilities
    predicted = q.argmax(axis=1)
    print(f"realised noise {report.realized_rate:.3f}; q(Y|X) agrees with the clean labels on "
          f"{np.mean(predicted == clean):.3f}, with the given ones on {np.mean(predicted == given):.3f}")
    own_flip = np.mean(np.sum(q * (1 - np.einsum("nii->ni", t)), axis=1))
    print(f"mean posterior {issues.noise_rate:.3f}; the model's flip rate E_q[1 - T(x)[y, y]] {own_flip:.3f}")
    print(f"1 - T(x)[clean, clean]: mean {np.mean(1 - t[rows, clean, clean]):.3f} "
          f"(true {np.mean(1 - true_rows[rows, clean]):.3f}); correlation of the diagonal with the true "
          f"keep probability {np.corrcoef(t[rows, clean, clean], true_rows[rows, clean])[0, 1]:+.3f}")
    np.set_printoptions(precision=2, suppress=True)
    print("T(x) averaged per clean class (rows clean, columns noisy):")
    print(np.array([t[clean == c, c].mean(axis=0) for c in range(dataset.num_classes)]))
    print("true class-level transition:")
    print(noise.transition_matrix(clean, given, dataset.num_classes))


if __name__ == "__main__":
    app.run(main)
