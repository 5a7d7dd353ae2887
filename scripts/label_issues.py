"""Finds the training labels of a run that are likeliest wrong.

    python scripts/label_issues.py --workdir runs/fmnist_idn45_cpu

Writes <workdir>/label_issues.csv (one row per training example, ranked by
how likely its label is wrong) and <workdir>/pictures/label_issues.png (the
top ones), and prints a summary. CausalNL runs are scored by the posterior
that the given label is wrong, from q(Y|X) and T(x); baselines by their
classifier's self-confidence (--score chooses; see tf_causalnl.label_issues).
"""

import sys

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402

from tf_causalnl.experiments import issue_report  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Work directory of a run made by scripts/train.py.")
_SCORE = flags.DEFINE_enum("score", None, ["posterior", "self_confidence", "normalized_margin"],
                           "The score; unset: posterior for CausalNL, self_confidence otherwise.")
_TOP = flags.DEFINE_integer("top", 32, "Examples in the picture (0: no picture).", lower_bound=0)
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    try:
        issues, paths, clean = issue_report.report_from_workdir(_WORKDIR.value, score=_SCORE.value,
                                                                top=_TOP.value)
    except (FileNotFoundError, ValueError) as error:  # say what to do, no traceback
        sys.exit(f"error: {error}")
    flagged = int(issues.is_issue.sum())
    print(f"{len(issues.given):,} training labels scored ({issues.method}); {flagged:,} flagged as wrong; "
          f"estimated noise rate {issues.noise_rate:.3f}")
    if clean is not None:
        wrong = issues.given != clean
        hits = int((issues.is_issue & wrong).sum())
        print(f"against the known clean labels: {int(wrong.sum()):,} wrong ({wrong.mean():.3f}); "
              f"precision {hits / max(flagged, 1):.3f}, recall {hits / max(int(wrong.sum()), 1):.3f}")
    for path in paths:
        print(path)


if __name__ == "__main__":
    app.run(main)
