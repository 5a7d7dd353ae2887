"""The grid's results: results.csv, the Markdown table with means and standard errors, the plot.

Also the comparisons of finished grids seed by seed (`compare`, scripts/paired.py).
"""

import csv
import io
import os

import ml_collections
import numpy as np

from tf_causalnl.checkpoints import write_bytes, write_csv
from tf_causalnl.experiments.grid_cells import (AUTO, finished_results, read_grid, row_label, stored_grid_config,
                                                write_text, cells, check_compatible, labels)
from tf_causalnl.training import run


#: The accuracy the table reports (the paper's Table 1 metric).
METRIC = f"clean_test_accuracy_mean_last_{run.LAST_EPOCHS}"
CSV_COLUMNS = (
    "label", "method", "forget_rate_mode", "noise_type", "noise_rate", "seed",
    "realized_noise_rate", "forget_rate", "estimated_noise_rate",
    METRIC, "clean_test_accuracy_last", "epochs", "seconds", "workdir",
)


def report(workdir: str, config: ml_collections.ConfigDict | None = None) -> str:
    """Rebuilds results.csv, results.md and the plot from finished cells, training nothing.

    Args:
      workdir: a grid work directory.
      config: the grid config; None uses the directory's `grid_config.json`.

    Returns:
      The Markdown table.

    Raises:
      ValueError: when `workdir` is no grid work directory or `config` is
        incompatible with it.
    """
    stored = stored_grid_config(workdir)
    if stored is None:
        raise ValueError(f"{workdir} is not a grid work directory: it has no grid_config.json.")
    if config is None:
        config = ml_collections.ConfigDict(stored)
    else:
        check_compatible(config, workdir)
    return write_report(config, workdir)


def collect(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
    """One row (the `CSV_COLUMNS`) per finished cell of the grid, in cell order."""
    rows = []
    for cell in cells(config):
        results = finished_results(os.path.join(workdir, cell.workdir))
        if results is None:
            continue
        rows.append({
            "label": cell.label,
            "method": cell.method,
            "forget_rate_mode": cell.forget_rate_mode,
            "noise_type": cell.noise_type,
            "noise_rate": cell.noise_rate,
            "seed": cell.seed,
            "realized_noise_rate": results.get("realized_noise_rate", ""),
            "forget_rate": results.get("forget_rate", ""),  # blank for methods without one
            "estimated_noise_rate": results.get("estimated_noise_rate", ""),
            METRIC: results[METRIC],
            "clean_test_accuracy_last": results["clean_test_accuracy_last"],
            "epochs": results["epochs"],
            "seconds": results["seconds"],
            "workdir": cell.workdir,
        })
    return rows


def markdown_table(config: ml_collections.ConfigDict, rows: list[dict]) -> str:
    """Table 1: a row per method label, a column per noise type and rate.

    Each entry is "mean ± std" of the accuracy in percent over the finished
    seeds (sample std, ddof=1), "(n=k)" when fewer than all seeds (or a single
    one) finished, empty when none did; the best mean of each column is bold.
    """
    grid = read_grid(config)
    columns = list(grid["cases"])
    row_labels = [row_label(method, mode) for method, mode in labels(config)]
    stats = _statistics(rows)
    text = {}
    for noise_type, rate in columns:
        found = {label: stats[label, noise_type, rate] for label in row_labels
                 if (label, noise_type, rate) in stats}
        # Compared as shown, so that means equal to two decimals are both bold.
        shown = {label: f"{mean:.2f}" for label, (mean, _, _) in found.items()}
        best = max(shown.values(), key=float, default=None)
        for label, (_, std, n) in found.items():
            entry = shown[label] if n == 1 else f"{shown[label]} ± {std:.2f}"
            if n == 1 or n < len(grid["seeds"]):
                entry += f" (n={n})"
            text[label, noise_type, rate] = f"**{entry}**" if shown[label] == best else entry
    lines = [
        "| Method | " + " | ".join(_column_name(*c) for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label in row_labels:
        lines.append(f"| {label} | " + " | ".join(text.get((label, *c), "") for c in columns) + " |")
    seeds = ", ".join(str(s) for s in grid["seeds"])
    lines += ["", (
        f"Clean test accuracy (%), mean of the last {run.LAST_EPOCHS} epochs of each run; "
        f"mean ± sample std over seeds {seeds}; best mean per column in bold; "
        f"{len(rows)} of {len(cells(config))} cells finished."
    )]
    return "\n".join(lines) + "\n"


def estimate_table(rows: list[dict]) -> str:
    """The anchor-point noise-rate estimates against the realised noise rates.

    One row per noise type and rate that has an estimate (any cell of a
    method that needed one): realised and estimated rate in percent, each
    "mean ± sample std" over seeds, and the mean absolute error. Empty when no
    cell made an estimate.
    """
    per_seed = {}
    for row in rows:
        if row["estimated_noise_rate"] != "":
            key = (row["noise_type"], row["noise_rate"], row["seed"])
            per_seed[key] = (float(row["realized_noise_rate"]), float(row["estimated_noise_rate"]))
    if not per_seed:
        return ""
    lines = ["| Noise | realised (%) | estimated (%) | mean absolute error (points) | seeds |",
             "|---|---|---|---|---|"]
    for noise_type, rate in sorted({key[:2] for key in per_seed}):
        pairs = np.array([v for k, v in per_seed.items() if k[:2] == (noise_type, rate)]) * 100.0
        spread = (lambda v: f" ± {np.std(v, ddof=1):.2f}" if len(v) > 1 else "")
        lines.append(
            f"| {_column_name(noise_type, rate)} | {pairs[:, 0].mean():.2f}{spread(pairs[:, 0])} "
            f"| {pairs[:, 1].mean():.2f}{spread(pairs[:, 1])} "
            f"| {np.abs(pairs[:, 1] - pairs[:, 0]).mean():.2f} | {len(pairs)} |")
    return "\n".join(lines) + "\n"


def compare(workdirs: list[str], pairs: list[tuple[str, str]]) -> str:
    """`paired_table` and `seconds_table` of the finished cells of one or more grids.

    Args:
      workdirs: grid work directories (each with its results.csv), each
        optionally "PATH=TAG": TAG is added to that grid's labels ("instancegm
        TAG"), so that two grids of one method can be compared.
      pairs: (A, B) labels; each row of the table is A − B. B may be several
        labels joined by "|" ("ce|coteaching"): the best of them on each seed.
    """
    rows = []
    for argument in workdirs:
        path, _, tag = argument.partition("=")
        try:
            with open(os.path.join(path, "results.csv"), newline="") as f:
                found = list(csv.DictReader(f))
        except FileNotFoundError:
            raise ValueError(f"{path} has no results.csv: give a grid's work directory (scripts/grid.py "
                             "--workdir) once a cell has finished.") from None
        rows += [{**row, "label": f"{row['label']} {tag}" if tag else row["label"]} for row in found]
    known = {row["label"] for row in rows}
    unknown = sorted({label for a, b in pairs for label in (a, *b.split("|"))} - known)
    if unknown:
        raise ValueError(f"no finished cells of {', '.join(unknown)}; the labels are {', '.join(sorted(known))}.")
    return paired_table(rows, pairs) + "\n" + seconds_table(rows)


def paired_table(rows: list[dict], pairs: list[tuple[str, str]]) -> str:
    """Method A − method B on the same seeds, per noise column: the differences and their mean ± s.e.

    Rows are `collect`'s (or results.csv's, as text). Each entry lists the
    per-seed differences of the accuracy in points, then their mean ± the
    standard error (sample std / sqrt(n)) and the mean in standard errors;
    only seeds finished for both methods count. B may be "X|Y|...": on each
    seed the best of them (a seed counts where all of them finished).
    """
    accuracy = {(row["label"], row["noise_type"], float(row["noise_rate"]), int(row["seed"])):
                100.0 * float(row[METRIC]) for row in rows}
    columns = sorted({key[1:3] for key in accuracy})
    lines = ["| A − B | " + " | ".join(_column_name(*c) for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for a, b in pairs:
        entries = []
        for column in columns:
            rivals = b.split("|")
            seeds = sorted(s for (label, *c, s) in accuracy if label == a and tuple(c) == column
                           and all((r, *column, s) in accuracy for r in rivals))
            d = np.array([accuracy[(a, *column, s)] - max(accuracy[(r, *column, s)] for r in rivals)
                          for s in seeds])
            listed = ", ".join(f"{v:+.2f}" for v in d)
            if len(d) > 1:
                se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
                listed += f": {d.mean():+.2f} ± {se:.2f}" + (f" ({d.mean() / se:+.1f} s.e.)" if se > 0 else "")
            entries.append(listed)
        lines.append(f"| {a} − {b} | " + " | ".join(entries) + " |")
    return "\n".join(lines) + "\n"


def seconds_table(rows: list[dict]) -> str:
    """Seconds per run of each label: the median, the range and the number of runs."""
    seconds = {}
    for row in rows:
        seconds.setdefault(row["label"], []).append(float(row["seconds"]))
    lines = ["| Method | seconds per run, median (range) | runs |", "|---|---|---|"]
    for label, values in seconds.items():
        lines.append(f"| {label} | {np.median(values):.0f} ({min(values):.0f}-{max(values):.0f}) | {len(values)} |")
    return "\n".join(lines) + "\n"


def write_report(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Writes results.csv, results.md and accuracy_vs_noise.png; returns the table."""
    rows = collect(config, workdir)
    write_csv(os.path.join(workdir, "results.csv"), rows, CSV_COLUMNS)
    table = markdown_table(config, rows)
    estimates = estimate_table(rows)
    if estimates:
        table += "\nNoise rate estimated from the noisy labels alone (anchor points):\n\n" + estimates
    write_text(os.path.join(workdir, "results.md"), table)
    plot(config, rows, os.path.join(workdir, "accuracy_vs_noise.png"))
    return table


def plot(config: ml_collections.ConfigDict, rows: list[dict], path: str) -> None:
    """Writes a PNG of accuracy (%) against noise rate: a line per label, a panel per noise type.

    Error bars are the sample std over seeds (none with a single seed).
    """
    # Imported here so that importing the library sets up no plotting state;
    # a bare Figure with the Agg canvas touches no global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = read_grid(config)
    points = panels(config, rows)
    figure = Figure(figsize=(5 * len(points), 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(points), squeeze=False)[0]
    for ax, (noise_type, lines) in zip(axes, points.items()):
        for (label, mode), line in lines.items():
            if line:
                rates, means, stds = zip(*line)
                ax.errorbar(rates, means, yerr=np.nan_to_num(stds), marker="o", capsize=3,
                            label=label, linestyle="--" if mode == AUTO else "-")
        ax.set_xticks(sorted({rate for t, rate in grid["cases"] if t == noise_type or rate == 0}))
        ax.set_title(noise_type.upper())
        ax.set_xlabel("noise rate")
        ax.set_ylabel("clean test accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes(path, buffer.getvalue())


def panels(config: ml_collections.ConfigDict, rows: list[dict]) -> dict:
    """What `plot` draws: noise type -> {(label, forget-rate mode): [(rate, mean %, std %), ...]}.

    A panel per noise type with a rate above 0, in the grid's order; clean
    labels (rate 0: the same labels whatever the type) are the first point of
    every panel, its own type's cells where the grid has them. Points of
    cases with no finished cell are left out.
    """
    grid = read_grid(config)
    stats = _statistics(rows)
    noise_types = list(dict.fromkeys(t for t, rate in grid["cases"] if rate > 0)) or [grid["cases"][0][0]]
    clean = [t for t, rate in grid["cases"] if rate == 0]
    result = {}
    for noise_type in noise_types:
        keys = [(noise_type if noise_type in clean else clean[0], 0.0)] if clean else []
        keys += [(t, rate) for t, rate in grid["cases"] if t == noise_type and rate > 0]
        result[noise_type] = {
            (row_label(method, mode), mode): [(rate, *stats[row_label(method, mode), t, rate][:2])
                                           for t, rate in keys if (row_label(method, mode), t, rate) in stats]
            for method, mode in labels(config)}
    return result


def _statistics(rows: list[dict]) -> dict:
    """(label, noise type, rate) -> (mean %, sample std % (nan when n=1), n)."""
    values = {}
    for row in rows:
        values.setdefault((row["label"], row["noise_type"], row["noise_rate"]), []).append(
            100.0 * float(row[METRIC]))
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                  len(v)) for key, v in values.items()}


def _column_name(noise_type: str, rate: float) -> str:
    return f"{noise_type.upper()}-{round(100 * rate, 4):g}%"
