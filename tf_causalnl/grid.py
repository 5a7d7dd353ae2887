"""The benchmark grid: every method x noise type x noise rate x seed, as in Table 1.

A grid config is a training config (`config.base_config()`) plus a `grid`
section::

    config.grid = ml_collections.ConfigDict()
    config.grid.methods = ("ce", "coteaching", "causalnl")
    config.grid.auto_methods = ("causalnl",)  # also run with forget_rate="auto"
    config.grid.noise_types = ("idn",)
    config.grid.noise_rates = (0.2, 0.3, 0.4, 0.45, 0.5)
    config.grid.seeds = (0, 1)

`run(config, workdir)` trains each cell with `training.train` into
`<workdir>/<method>[-auto]/<type>-<rate>/seed<seed>`, skips the cells that
finished (their `results.json` exists) and resumes the one that was
interrupted. After every trained cell it rewrites, each file atomically:

  grid_config.json        the grid config of the last `run`
  results.csv             one row per finished cell
  results.md              Table 1: mean ± sample std (%) over seeds, best in bold;
                          then the estimated noise rates against the realised ones
  accuracy_vs_noise.png   accuracy against noise rate, one panel per noise type

A work directory accepts a later `run` whose config differs from the stored
`grid_config.json` only in the `grid` section (more seeds, methods, rates or
noise types, or fewer) and in the keys every cell sets itself (`seed`,
`noise.type`, `noise.rate`, `model.method`, `model.forget_rate`): such a config
gives every cell the same training config, so finished cells stay valid. Any
other difference is refused before anything is written. The outputs describe
the cells of the config passed last.
"""

import copy
import csv
import dataclasses
import datetime
import io
import json
import os
import time
from collections.abc import Callable

import ml_collections
import numpy as np

from tf_causalnl import checks, noise, training
from tf_causalnl.checkpoints import write_bytes

#: Forget-rate modes: the requested noise rate, as the paper's public code
#: does, or "auto", the noise rate estimated from the noisy labels.
ORACLE, AUTO = "oracle", "auto"

#: The accuracy the table reports (the paper's Table 1 metric).
METRIC = f"clean_test_accuracy_mean_last_{training.LAST_EPOCHS}"

CSV_COLUMNS = (
    "label", "method", "forget_rate_mode", "noise_type", "noise_rate", "seed",
    "realized_noise_rate", "forget_rate", "estimated_noise_rate",
    METRIC, "clean_test_accuracy_last", "epochs", "seconds", "workdir",
)

# Keys every cell sets from the grid, so they never make two configs differ.
_CELL_KEYS = ("seed", "noise.type", "noise.rate", "model.method", "model.forget_rate")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the grid.

    Attributes:
      method: a name in `training.METHODS`.
      forget_rate_mode: `ORACLE` (forget rate = noise rate) or `AUTO`.
      noise_type: a name in `noise.NOISE_TYPES`.
      noise_rate: the requested noise rate.
      seed: the run's seed (data subset, noise, initialisation).
    """

    method: str
    forget_rate_mode: str
    noise_type: str
    noise_rate: float
    seed: int

    @property
    def label(self) -> str:
        """The table row: the method, with " (auto)" for the auto forget rate."""
        return _label(self.method, self.forget_rate_mode)

    @property
    def workdir(self) -> str:
        """The cell's directory relative to the grid's, e.g. `causalnl-auto/idn-0.45/seed0`."""
        name = self.method if self.forget_rate_mode == ORACLE else f"{self.method}-{AUTO}"
        return os.path.join(name, f"{self.noise_type}-{self.noise_rate:g}", f"seed{self.seed}")


def labels(config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
    """(method, forget-rate mode) of each table row, each auto variant after its method."""
    grid = _grid(config)
    return [(method, mode) for method in grid["methods"]
            for mode in ((ORACLE, AUTO) if method in grid["auto_methods"] else (ORACLE,))]


def cells(config: ml_collections.ConfigDict) -> list[Cell]:
    """Every cell of the grid, seed-major, so that a partial grid is a useful table.

    For the first seed come every noise type and rate with every method (so a
    column fills before the next starts), then the same for the next seed.

    Raises:
      ValueError: when the grid section is missing or malformed.
    """
    grid = _grid(config)
    return [Cell(method, mode, noise_type, rate, seed)
            for seed in grid["seeds"]
            for noise_type in grid["noise_types"]
            for rate in grid["noise_rates"]
            for method, mode in labels(config)]


def cell_config(config: ml_collections.ConfigDict, cell: Cell,
                estimate_cache_dir: str = "") -> ml_collections.ConfigDict:
    """The training config of one cell: the grid config without `grid`, set to the cell.

    Args:
      config: the grid config (left unchanged).
      cell: the cell.
      estimate_cache_dir: when given and the config leaves `estimate.cache_dir`
        empty, the directory where cells on the same data, noise and seed
        share the anchor-point noise estimate.

    Returns:
      A deep copy with `seed`, `noise.type`, `noise.rate`, `model.method` and
      `model.forget_rate` (the noise rate, or "auto") set.
    """
    result = copy.deepcopy(config)
    with result.unlocked():
        if "grid" in result:
            del result["grid"]
        result.seed = int(cell.seed)
        result.noise.type = cell.noise_type
        result.noise.rate = float(cell.noise_rate)
        result.model.method = cell.method
        result.model.forget_rate = float(cell.noise_rate) if cell.forget_rate_mode == ORACLE else AUTO
        if estimate_cache_dir and "estimate" in result and "cache_dir" in result.estimate \
                and not result.estimate.cache_dir:
            result.estimate.cache_dir = estimate_cache_dir
    return result


def run(config: ml_collections.ConfigDict, workdir: str,
        train_fn: Callable[[ml_collections.ConfigDict, str], dict] = training.train,
        log: Callable[[str], None] = print, shard: int = 0, num_shards: int = 1) -> str:
    """Trains every unfinished cell of the grid and writes the outputs.

    Args:
      config: the grid config.
      workdir: the grid's work directory; rerunning resumes it.
      train_fn: trains one cell config into a directory and returns its
        results (as `training.train` does, which resumes an interrupted run).
      log: receives one progress line per cell.
      shard, num_shards: train only the cells whose index is `shard` modulo
        `num_shards`, so that `num_shards` processes can share one grid (on
        a 2-core CPU two processes finish sooner than one). Every process
        rewrites the outputs from all the cells finished so far.

    Returns:
      The Markdown table (also in `results.md`).

    Raises:
      ValueError: when the config or the grid is malformed (unknown keys,
        methods or noise types; see `checks.check_config`) or `workdir` holds
        an incompatible grid (see the module docstring); nothing is written
        and no cell trains then.
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards={num_shards}), got {shard}.")
    checks.check_config(config)
    grid_cells = cells(config)
    check_compatible(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    _write_text(os.path.join(workdir, "grid_config.json"), _to_json(config))
    cache_dir = os.path.join(workdir, "estimates")
    start = time.perf_counter()
    for index, cell in enumerate(grid_cells, start=1):
        if (index - 1) % num_shards != shard:
            continue
        cell_dir = os.path.join(workdir, cell.workdir)
        results = _finished(cell_dir)
        status = "skipped (finished)"
        if results is None:
            results = train_fn(cell_config(config, cell, cache_dir), cell_dir)
            status = "done"
            write_report(config, workdir)
        elapsed = datetime.timedelta(seconds=round(time.perf_counter() - start))
        log(f"[{index}/{len(grid_cells)}] {status}: {cell.label} "
            f"{cell.noise_type.upper()}-{cell.noise_rate:g} seed {cell.seed}: "
            f"accuracy {100 * results[METRIC]:.2f}% in {results['seconds']:.1f} s; "
            f"{len(grid_cells) - index} cells left; elapsed {elapsed}")
    return write_report(config, workdir)


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
    stored = _stored_config(workdir)
    if stored is None:
        raise ValueError(f"{workdir} is not a grid work directory: it has no grid_config.json.")
    if config is None:
        config = ml_collections.ConfigDict(stored)
    else:
        check_compatible(config, workdir)
    return write_report(config, workdir)


def check_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Raises ValueError when `workdir` holds a grid whose cells would train differently.

    Compatible: no `grid_config.json` yet, or one equal to `config` except in
    the `grid` section and the keys each cell sets (see the module docstring).
    """
    stored = _stored_config(workdir)
    if stored is None:
        return
    differences = checks.config_differences(stored, config, ignore=("grid",) + _CELL_KEYS)
    if differences:
        raise ValueError(
            f"{workdir} holds a grid with a different training config ({', '.join(differences)}); "
            "only the grid section may change. Use another work directory."
        )


def collect(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
    """One row (the `CSV_COLUMNS`) per finished cell of the grid, in cell order."""
    rows = []
    for cell in cells(config):
        results = _finished(os.path.join(workdir, cell.workdir))
        if results is None:
            continue
        oracle = cell.noise_rate if cell.forget_rate_mode == ORACLE else ""
        rows.append({
            "label": cell.label,
            "method": cell.method,
            "forget_rate_mode": cell.forget_rate_mode,
            "noise_type": cell.noise_type,
            "noise_rate": cell.noise_rate,
            "seed": cell.seed,
            "realized_noise_rate": results.get("realized_noise_rate", ""),
            "forget_rate": results.get("forget_rate", oracle),
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
    grid = _grid(config)
    columns = [(t, r) for t in grid["noise_types"] for r in grid["noise_rates"]]
    row_labels = [_label(method, mode) for method, mode in labels(config)]
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
        f"Clean test accuracy (%), mean of the last {training.LAST_EPOCHS} epochs of each run; "
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


def write_report(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Writes results.csv, results.md and accuracy_vs_noise.png; returns the table."""
    rows = collect(config, workdir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(os.path.join(workdir, "results.csv"), buffer.getvalue())
    table = markdown_table(config, rows)
    estimates = estimate_table(rows)
    if estimates:
        table += "\nNoise rate estimated from the noisy labels alone (anchor points):\n\n" + estimates
    _write_text(os.path.join(workdir, "results.md"), table)
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

    grid = _grid(config)
    stats = _statistics(rows)
    noise_types = grid["noise_types"]
    figure = Figure(figsize=(5 * len(noise_types), 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(noise_types), squeeze=False)[0]
    for ax, noise_type in zip(axes, noise_types):
        for method, mode in labels(config):
            label = _label(method, mode)
            points = [(rate, *stats[label, noise_type, rate]) for rate in grid["noise_rates"]
                      if (label, noise_type, rate) in stats]
            if points:
                rates, means, stds, _ = zip(*points)
                ax.errorbar(rates, means, yerr=np.nan_to_num(stds), marker="o", capsize=3,
                            label=label, linestyle="--" if mode == AUTO else "-")
        ax.set_xticks(grid["noise_rates"])
        ax.set_title(noise_type.upper())
        ax.set_xlabel("noise rate")
        ax.set_ylabel("clean test accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    write_bytes(path, buffer.getvalue())


def _grid(config) -> dict:
    """The grid section as tuples, checked."""
    if "grid" not in config:
        raise ValueError("The config has no grid section (config.grid).")
    section = config["grid"]
    grid = {key: tuple(section.get(key, ())) for key in
            ("methods", "auto_methods", "noise_types", "noise_rates", "seeds")}
    for key in ("methods", "noise_types", "noise_rates", "seeds"):
        if not grid[key]:
            raise ValueError(f"config.grid.{key} is empty.")
    for key, values in grid.items():
        if len(set(values)) != len(values):
            raise ValueError(f"config.grid.{key} has duplicates: {values}.")
    unknown = sorted(set(grid["auto_methods"]) - set(grid["methods"]))
    if unknown:
        raise ValueError(f"config.grid.auto_methods {unknown} are not in config.grid.methods.")
    for method in grid["methods"]:
        checks.check_choice("method", "grid.methods", method, training.METHODS)
    for noise_type in grid["noise_types"]:
        checks.check_choice("noise type", "grid.noise_types", noise_type, noise.NOISE_TYPES)
    for rate in grid["noise_rates"]:
        noise.check_rate(rate, "each of config.grid.noise_rates")
    return grid


def _statistics(rows: list[dict]) -> dict:
    """(label, noise type, rate) -> (mean %, sample std % (nan when n=1), n)."""
    values = {}
    for row in rows:
        values.setdefault((row["label"], row["noise_type"], row["noise_rate"]), []).append(
            100.0 * float(row[METRIC]))
    return {key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"),
                  len(v)) for key, v in values.items()}


def _label(method: str, mode: str) -> str:
    return method if mode == ORACLE else f"{method} ({AUTO})"


def _column_name(noise_type: str, rate: float) -> str:
    return f"{noise_type.upper()}-{round(100 * rate, 4):g}%"


def _finished(cell_dir: str) -> dict | None:
    """The cell's results, or None when it has not finished (no readable results.json)."""
    try:
        with open(os.path.join(cell_dir, "results.json")) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _stored_config(workdir: str) -> dict | None:
    return checks.read_stored_config(os.path.join(workdir, "grid_config.json"))


def _to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"


def _write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
