"""Searches CausalNL's hyper-parameters on noisy labels alone (keras-tuner).

    python scripts/tune.py --config configs/tune_fmnist_idn45_cpu.py \
        --workdir runs/tune_fmnist_idn45_cpu [--max_trials=12] [--config.tune.algorithm=bayesian ...]

Prints one line per finished trial. Rerunning the same command on the same
work directory resumes the search (a larger --max_trials extends it). It
writes trials.csv and best_config.py, which scripts/train.py accepts:

    python scripts/train.py --config runs/tune_fmnist_idn45_cpu/best_config.py --workdir runs/best

Distributed (docs/TUNING.md): the same command in each process, with
KERASTUNER_TUNER_ID=chief (or worker0, worker1, ...), KERASTUNER_ORACLE_IP
and KERASTUNER_ORACLE_PORT set.
"""

import json

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402
from tf_causalnl.experiments import tuning, tuning_config


_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/tune_*.py file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory of the search; rerunning on it resumes.")
_MAX_TRIALS = flags.DEFINE_integer("max_trials", None,
                                   "Total trial budget, trials already run included (default: config.tune.max_trials).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    summary = tuning.tune(_CONFIG.value, _WORKDIR.value, _MAX_TRIALS.value)
    if not summary:  # a worker of a distributed search: the chief writes the results
        return
    print(json.dumps(summary, indent=2, default=str))
    if "best_config" in summary:
        print(f"best trial {summary['best_trial']}: {tuning_config.OBJECTIVE} {summary[tuning_config.OBJECTIVE]:.4f}; "
              f"train it with: python scripts/train.py --config {summary['best_config']} --workdir <dir>")


if __name__ == "__main__":
    app.run(main)
