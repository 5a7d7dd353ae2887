"""The benchmark grid: one run per (method, noise, seed), resumed where it stopped.

`run(config, workdir)` trains the cells that have not finished, one after
the other, and rewrites the report after each.
"""

import datetime
import os
import time
from collections.abc import Callable

import ml_collections

from tf_causalnl.experiments.grid_cells import (finished_results, config_json, write_text, cell_config, cells,
                                                check_compatible)
from tf_causalnl.experiments.grid_report import METRIC, write_report
from tf_causalnl.training import config_checks
from tf_causalnl.training.run import train


def run(config: ml_collections.ConfigDict, workdir: str,
        train_fn: Callable[[ml_collections.ConfigDict, str], dict] = train,
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
        methods or noise types; see `config_checks.check_config`) or `workdir` holds
        an incompatible grid (see the module docstring); nothing is written
        and no cell trains then.
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards={num_shards}), got {shard}.")
    config_checks.check_config(config)
    grid_cells = cells(config)
    check_compatible(config, workdir)
    os.makedirs(workdir, exist_ok=True)
    write_text(os.path.join(workdir, "grid_config.json"), config_json(config))
    cache_dir = os.path.join(workdir, "estimates")
    start = time.perf_counter()
    for index, cell in enumerate(grid_cells, start=1):
        if (index - 1) % num_shards != shard:
            continue
        cell_dir = os.path.join(workdir, cell.workdir)
        results = finished_results(cell_dir)
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
