"""The grid's cells: the runs a grid config asks for, each one's config and directory, and which finished.

A grid work directory holds one run per (method, noise, seed) cell; a rerun
with the same grid skips the finished ones. The noise of the cells is either
every pair of `grid.noise_types` and `grid.noise_rates`, or the list
`grid.cases` of "type-rate" names such as "idn-0.2" or "pairflip-0.45" (a
spectrum of noises that is not a product).
"""

import copy
import dataclasses
import json
import os

import ml_collections

from tf_causalnl import noise
from tf_causalnl.checkpoints import write_bytes
from tf_causalnl.training import checks, config_checks, registry


#: Forget-rate modes: the requested noise rate, as the paper's public code
#: does, or "auto", the noise rate estimated from the noisy labels.
ORACLE, AUTO = "oracle", "auto"


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
        return row_label(self.method, self.forget_rate_mode)

    @property
    def workdir(self) -> str:
        """The cell's directory relative to the grid's, e.g. `causalnl-auto/idn-0.45/seed0`."""
        name = self.method if self.forget_rate_mode == ORACLE else f"{self.method}-{AUTO}"
        return os.path.join(name, f"{self.noise_type}-{self.noise_rate:g}", f"seed{self.seed}")


def labels(config: ml_collections.ConfigDict) -> list[tuple[str, str]]:
    """(method, forget-rate mode) of each table row, each auto variant after its method."""
    grid = read_grid(config)
    return [(method, mode) for method in grid["methods"]
            for mode in ((ORACLE, AUTO) if method in grid["auto_methods"] else (ORACLE,))]


def cells(config: ml_collections.ConfigDict) -> list[Cell]:
    """Every cell of the grid, seed-major, so that a partial grid is a useful table.

    For the first seed come every noise type and rate with every method (so a
    column fills before the next starts), then the same for the next seed.

    Raises:
      ValueError: when the grid section is missing or malformed.
    """
    grid = read_grid(config)
    return [Cell(method, mode, noise_type, rate, seed)
            for seed in grid["seeds"]
            for noise_type, rate in grid["cases"]
            for method, mode in labels(config)]


def noise_cases(config: ml_collections.ConfigDict) -> list[tuple[str, float]]:
    """The grid's (noise type, rate) pairs in its order: `grid.cases`, or the
    product of `grid.noise_types` and `grid.noise_rates`."""
    return list(read_grid(config)["cases"])


def parse_case(name: str) -> tuple[str, float]:
    """("idn", 0.2) from "idn-0.2", the name of a case and of its cells' folder.

    Raises:
      ValueError: not "type-rate" with a known noise type and a rate in [0, 1).
    """
    noise_type, _, rate = str(name).rpartition("-")
    try:
        value = float(rate)
    except ValueError:
        value = None
    if not noise_type or value is None:
        raise ValueError(
            f'config.grid.cases has {name!r}; each case is "type-rate", e.g. "idn-0.2" or "pairflip-0.45".')
    config_checks.check_choice("noise type", "the type of each of config.grid.cases", noise_type,
                               noise.NOISE_TYPES)
    noise.check_rate(value, "the rate of each of config.grid.cases")
    return noise_type, value


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


def check_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Raises ValueError when `workdir` holds a grid whose cells would train differently.

    Compatible: no `grid_config.json` yet, or one equal to `config` except in
    the `grid` section and the keys each cell sets (see the module docstring).
    """
    stored = stored_grid_config(workdir)
    if stored is None:
        return
    differences = config_checks.config_differences(stored, config, ignore=("grid",) + _CELL_KEYS)
    if differences:
        raise ValueError(
            f"{workdir} holds a grid with a different training config ({', '.join(differences)}); "
            "only the grid section may change. Use another work directory."
        )


def read_grid(config) -> dict:
    """The grid section as tuples, checked."""
    if "grid" not in config:
        raise ValueError("The config has no grid section (config.grid).")
    section = config["grid"]
    grid = {key: tuple(section.get(key, ())) for key in
            ("methods", "auto_methods", "noise_types", "noise_rates", "cases", "seeds")}
    if grid["cases"] and (grid["noise_types"] or grid["noise_rates"]):
        raise ValueError("config.grid sets both cases and noise_types/noise_rates; give one: "
                         'cases such as ("idn-0.2", "symmetric-0.4"), or types and rates for every pair.')
    for key in ("methods", "seeds") + (() if grid["cases"] else ("noise_types", "noise_rates")):
        if not grid[key]:
            raise ValueError(f"config.grid.{key} is empty.")
    for key, values in grid.items():
        if len(set(values)) != len(values):
            raise ValueError(f"config.grid.{key} has duplicates: {values}.")
    unknown = sorted(set(grid["auto_methods"]) - set(grid["methods"]))
    if unknown:
        raise ValueError(f"config.grid.auto_methods {unknown} are not in config.grid.methods.")
    for method in grid["methods"]:
        config_checks.check_choice("method", "grid.methods", method, registry.METHODS)
    for noise_type in grid["noise_types"]:
        config_checks.check_choice("noise type", "grid.noise_types", noise_type, noise.NOISE_TYPES)
    for rate in grid["noise_rates"]:
        noise.check_rate(rate, "each of config.grid.noise_rates")
    if grid["cases"]:
        grid["cases"] = tuple(parse_case(name) for name in grid["cases"])
        if len(set(grid["cases"])) != len(grid["cases"]):
            raise ValueError(f"config.grid.cases names a noise twice: {section['cases']}.")
    else:
        grid["cases"] = tuple((t, r) for t in grid["noise_types"] for r in grid["noise_rates"])
    return grid


def finished_results(cell_dir: str) -> dict | None:
    """The cell's results, or None when it has not finished (no readable results.json)."""
    try:
        with open(os.path.join(cell_dir, "results.json")) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stored_grid_config(workdir: str) -> dict | None:
    """The config a grid work directory was made with (its grid_config.json), or None."""
    return checks.read_stored_config(os.path.join(workdir, "grid_config.json"))


def config_json(config: ml_collections.ConfigDict) -> str:
    """A config as grid_config.json holds it: sorted, indented JSON."""
    return json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"


def write_text(path: str, text: str) -> None:
    """Writes UTF-8 text atomically (`checkpoints.write_bytes`)."""
    write_bytes(path, text.encode("utf-8"))


def row_label(method: str, mode: str) -> str:
    """A table row's label: the method, with " (auto)" for the estimated forget rate."""
    return method if mode == ORACLE else f"{method} ({AUTO})"
