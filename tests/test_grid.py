"""The benchmark grid: cells, resuming, the outputs, and one real tiny cell."""

import csv
import json
import os
import pathlib

import ml_collections
import numpy as np
import pytest

from tf_causalnl import data, training
from tf_causalnl.config import base_config
from tf_causalnl.experiments import grid, grid_cells, grid_report

METRIC = "clean_test_accuracy_mean_last_10"


def _grid_config(methods=("ce", "causalnl"), auto_methods=("causalnl",), rates=(0.2, 0.45),
                 seeds=(0, 1)):
    config = base_config()
    config.grid = ml_collections.ConfigDict()
    config.grid.methods = methods
    config.grid.auto_methods = auto_methods
    config.grid.noise_types = ("idn",)
    config.grid.noise_rates = rates
    config.grid.seeds = seeds
    return config


# Known accuracies: (label, rate, seed) -> accuracy; others get a made-up one.
_KNOWN = {
    ("ce", 0.2, 0): 0.80, ("ce", 0.2, 1): 0.82,
    ("ce", 0.45, 0): 0.60, ("ce", 0.45, 1): 0.70,
    ("causalnl", 0.2, 0): 0.85, ("causalnl", 0.2, 1): 0.86,
    ("causalnl", 0.45, 0): 0.62, ("causalnl", 0.45, 1): 0.64,
}


class _FakeTrain:
    """Records its calls and writes a results.json like training.train's."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, workdir):
        self.calls.append((config, workdir))
        auto = config.model.forget_rate == "auto"
        label = config.model.method + (" (auto)" if auto else "")
        accuracy = _KNOWN.get((label, config.noise.rate, config.seed),
                              0.9 - config.noise.rate / 2 + config.seed / 100)
        results = {
            "epochs": 1, "clean_test_accuracy_last": accuracy, METRIC: accuracy, "seconds": 1.5,
            "realized_noise_rate": config.noise.rate + 0.001, "workdir": os.path.abspath(workdir),
        }
        if config.model.method != "ce":  # training.train reports the forget rate of a model that has one
            results["forget_rate"] = config.noise.rate - 0.01 if auto else config.noise.rate
        if auto:
            results["estimated_noise_rate"] = config.noise.rate - 0.01
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f)
        return results


def _snapshot(directory):
    return {str(p): p.read_bytes() for p in sorted(pathlib.Path(directory).rglob("*")) if p.is_file()}


def test_cells_are_seed_major_with_auto_variants_and_directories():
    cells = grid_cells.cells(_grid_config())
    assert len(cells) == 3 * 2 * 2
    assert [c.seed for c in cells] == [0] * 6 + [1] * 6
    assert [(c.label, c.noise_rate) for c in cells[:6]] == [
        ("ce", 0.2), ("causalnl", 0.2), ("causalnl (auto)", 0.2),
        ("ce", 0.45), ("causalnl", 0.45), ("causalnl (auto)", 0.45),
    ]
    auto = cells[5]
    assert (auto.method, auto.forget_rate_mode, auto.noise_type) == ("causalnl", "auto", "idn")
    assert auto.workdir == os.path.join("causalnl-auto", "idn-0.45", "seed0")
    assert cells[7].workdir == os.path.join("causalnl", "idn-0.2", "seed1")
    assert len({c.workdir for c in cells}) == len(cells)


def test_malformed_grids_are_refused():
    with pytest.raises(ValueError, match="no grid section"):
        grid_cells.cells(base_config())
    with pytest.raises(ValueError, match=r"auto_methods \['mixup'\] are not in"):
        grid_cells.cells(_grid_config(auto_methods=("mixup",)))
    with pytest.raises(ValueError, match="seeds is empty"):
        grid_cells.cells(_grid_config(seeds=()))
    with pytest.raises(ValueError, match="noise_rates has duplicates"):
        grid_cells.cells(_grid_config(rates=(0.2, 0.2)))


def _cases_config(cases=("idn-0", "idn-0.2", "symmetric-0.4", "pairflip-0.45")):
    config = _grid_config(auto_methods=(), seeds=(0, 1))
    del config.grid.noise_types, config.grid.noise_rates
    config.grid.cases = cases
    return config


def test_a_list_of_cases_gives_exactly_those_noises_in_their_order():
    config = _cases_config()
    cells = grid_cells.cells(config)
    assert len(cells) == 4 * 2 * 2  # cases x methods x seeds, not types x rates
    assert grid_cells.noise_cases(config) == [("idn", 0.0), ("idn", 0.2), ("symmetric", 0.4), ("pairflip", 0.45)]
    assert [c.workdir for c in cells[:8:2]] == [os.path.join("ce", name, "seed0") for name in config.grid.cases]
    assert grid_cells.cell_config(config, cells[6]).noise.to_dict()["type"] == "pairflip"


@pytest.mark.parametrize("change, match", [
    ({"cases": ("idn-0.2", "idn-0.20")}, r"names a noise twice"),
    ({"cases": ("idn:0.2",)}, r"config.grid.cases has 'idn:0.2'; each case is \"type-rate\", e.g. \"idn-0.2\""),
    ({"cases": ("sym-0.2",)}, r"Unknown noise type 'sym'; choose one of \['idn', 'pairflip', 'symmetric'\]"),
    ({"cases": ("idn-45",)}, r"the rate of each of config.grid.cases must be in \[0, 1\), got 45"),
    ({"noise_rates": (0.2,)}, r"sets both cases and noise_types/noise_rates; give one"),
])
def test_malformed_cases_are_refused(change, match):
    config = _cases_config()
    for key, value in change.items():
        config.grid[key] = value
    with pytest.raises(ValueError, match=match):
        grid_cells.cells(config)


def test_the_plot_of_cases_puts_clean_labels_first_in_every_panel(tmp_path):
    config, workdir = _cases_config(), str(tmp_path / "grid")
    grid.run(config, workdir, train_fn=_FakeTrain(), log=lambda line: None)
    rows = grid_report.collect(config, workdir)
    panels = grid_report.panels(config, rows)
    assert list(panels) == ["idn", "symmetric", "pairflip"]
    # _FakeTrain: 0.9 - rate / 2 + seed / 100, so seeds 0 and 1 average 90.5 - 50 rate (%);
    # _KNOWN sets ce at rate 0.2 to 80 and 82, at 0.45 to 60 and 70.
    for noise_type, rates, means in (("idn", [0.0, 0.2], [90.5, 81.0]), ("symmetric", [0.0, 0.4], [90.5, 70.5]),
                                     ("pairflip", [0.0, 0.45], [90.5, 65.0])):
        line = panels[noise_type]["ce", "oracle"]
        assert [rate for rate, _, _ in line] == rates
        np.testing.assert_allclose([mean for _, mean, _ in line], means)
    table = grid_report.report(workdir)
    assert table.splitlines()[0] == "| Method | IDN-0% | IDN-20% | SYMMETRIC-40% | PAIRFLIP-45% |"


def test_cell_config_sets_the_cell_and_drops_the_grid():
    config = _grid_config()
    oracle, auto = grid_cells.cells(config)[10:12]  # seed 1, rate 0.45: causalnl, causalnl (auto)
    cell_config = grid_cells.cell_config(config, oracle)
    assert "grid" not in cell_config and "grid" in config
    assert (cell_config.seed, cell_config.noise.type, cell_config.noise.rate) == (1, "idn", 0.45)
    assert (cell_config.model.method, cell_config.model.forget_rate) == ("causalnl", 0.45)
    assert cell_config.estimate.cache_dir == ""
    auto_config = grid_cells.cell_config(config, auto, estimate_cache_dir="/grid/estimates")
    assert auto_config.model.forget_rate == "auto"
    assert auto_config.estimate.cache_dir == "/grid/estimates"
    assert config.model.forget_rate == 0.45 and config.seed == 0  # the grid config is untouched


def test_run_skips_finished_cells_and_retrains_unfinished_ones(tmp_path):
    config, workdir = _grid_config(rates=(0.2,)), str(tmp_path / "grid")
    train, lines = _FakeTrain(), []
    grid.run(config, workdir, train_fn=train, log=lines.append)
    assert [w for _, w in train.calls] == [os.path.join(workdir, c.workdir) for c in grid_cells.cells(config)]
    assert train.calls[0][0].estimate.cache_dir == os.path.join(workdir, "estimates")
    assert len(lines) == 6 and lines[0].startswith("[1/6] done: ce IDN-0.2 seed 0: accuracy 80.00% in 1.5 s")
    assert "5 cells left" in lines[0] and "elapsed 0:00:0" in lines[0]

    again = _FakeTrain()
    grid.run(config, workdir, train_fn=again, log=lines.append)
    assert again.calls == [] and all("skipped (finished)" in line for line in lines[6:])

    unfinished = os.path.join(workdir, "causalnl", "idn-0.2", "seed1")
    os.remove(os.path.join(unfinished, "results.json"))
    grid.run(config, workdir, train_fn=again, log=lines.append)
    assert [w for _, w in again.calls] == [unfinished]


def test_markdown_table_is_mean_and_sample_std_with_the_best_in_bold(tmp_path):
    config, workdir = _grid_config(), str(tmp_path / "grid")
    grid.run(config, workdir, train_fn=_FakeTrain(), log=lambda line: None)
    # Leave causalnl at 45% with seed 0 only, and no auto variant at all.
    for cell in grid_cells.cells(config):
        if cell.method == "causalnl" and (cell.forget_rate_mode == "auto"
                                          or (cell.noise_rate, cell.seed) == (0.45, 1)):
            os.remove(os.path.join(workdir, cell.workdir, "results.json"))

    table = grid_report.report(workdir)  # --report_only: from grid_config.json
    # ce 20%: 80, 82 -> 81.00 ± 1.41; causalnl 20%: 85, 86 -> 85.50 ± 0.71 (best);
    # ce 45%: 60, 70 -> 65.00 ± 7.07 (best); causalnl 45%: 62 alone.
    assert table.splitlines()[:5] == [
        "| Method | IDN-20% | IDN-45% |",
        "|---|---|---|",
        "| ce | 81.00 ± 1.41 | **65.00 ± 7.07** |",
        "| causalnl | **85.50 ± 0.71** | 62.00 (n=1) |",
        "| causalnl (auto) |  |  |",
    ]
    assert "seeds 0, 1" in table and "7 of 12 cells finished" in table
    assert open(os.path.join(workdir, "results.md"), encoding="utf-8").read() == table


def test_csv_has_one_row_per_finished_cell(tmp_path):
    config, workdir = _grid_config(seeds=(0,)), str(tmp_path / "grid")
    grid.run(config, workdir, train_fn=_FakeTrain(), log=lambda line: None)
    with open(os.path.join(workdir, "results.csv"), newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == (
        "label", "method", "forget_rate_mode", "noise_type", "noise_rate", "seed",
        "realized_noise_rate", "forget_rate", "estimated_noise_rate", METRIC,
        "clean_test_accuracy_last", "epochs", "seconds", "workdir",
    )
    assert [r["label"] for r in rows] == ["ce", "causalnl", "causalnl (auto)"] * 2
    oracle, auto = rows[4], rows[5]
    assert (oracle["noise_rate"], oracle["forget_rate"]) == ("0.45", "0.45")
    assert rows[3]["forget_rate"] == ""  # CE has none
    assert oracle["estimated_noise_rate"] == ""
    assert (auto["forget_rate_mode"], auto["seed"]) == ("auto", "0")
    assert float(auto["forget_rate"]) == pytest.approx(0.44)
    assert float(auto["estimated_noise_rate"]) == pytest.approx(0.44)
    assert float(oracle[METRIC]) == 0.62 and float(oracle["realized_noise_rate"]) == pytest.approx(0.451)
    assert (oracle["epochs"], oracle["seconds"]) == ("1", "1.5")
    assert oracle["workdir"] == os.path.join("causalnl", "idn-0.45", "seed0")


def _write_results(directory, rows):
    directory.mkdir()
    with open(directory / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["label", "noise_type", "noise_rate", "seed", METRIC, "seconds"])
        writer.writeheader()
        writer.writerows(rows)


def test_compare_pairs_methods_by_seed_across_grids(tmp_path):
    row = lambda label, seed, accuracy, seconds=10.0: {  # noqa: E731
        "label": label, "noise_type": "idn", "noise_rate": 0.5, "seed": seed, METRIC: accuracy, "seconds": seconds}
    _write_results(tmp_path / "a", [row("coteaching", 0, 0.60), row("coteaching", 1, 0.61), row("coteaching", 2, 0.62),
                                    row("coteaching", 3, 0.50), row("dividemix", 0, 0.61, 30.0),
                                    row("dividemix", 1, 0.63, 50.0), row("dividemix", 2, 0.65, 40.0)])
    _write_results(tmp_path / "b", [row("dividemix", 0, 0.59), row("dividemix", 1, 0.61)])
    text = grid_report.compare([str(tmp_path / "a"), f"{tmp_path / 'b'}=long"],
                               [("dividemix", "coteaching"), ("dividemix long", "dividemix")])
    lines = text.splitlines()
    assert lines[0] == "| A − B | IDN-50% |"
    # Seed 3 has no DivideMix cell, so it is left out; differences 1, 2, 3: mean 2, std 1, s.e. 1/sqrt(3).
    assert lines[2] == "| dividemix − coteaching | +1.00, +2.00, +3.00: +2.00 ± 0.58 (+3.5 s.e.) |"
    assert lines[3] == "| dividemix long − dividemix | -2.00, -2.00: -2.00 ± 0.00 |"
    assert "| dividemix | 40 (30-50) | 3 |" in lines and "| coteaching | 10 (10-10) | 4 |" in lines
    # Against the better of two on each seed: coteaching 60, 61, 62 and dividemix long 59, 61 -> 60, 61.
    best = grid_report.compare([str(tmp_path / "a"), f"{tmp_path / 'b'}=long"],
                               [("dividemix", "coteaching|dividemix long")]).splitlines()
    assert best[2] == "| dividemix − coteaching|dividemix long | +1.00, +2.00: +1.50 ± 0.50 (+3.0 s.e.) |"
    with pytest.raises(ValueError, match=r"^no finished cells of mixup; the labels are coteaching, dividemix, "):
        grid_report.compare([str(tmp_path / "a"), f"{tmp_path / 'b'}=long"], [("mixup", "coteaching")])
    with pytest.raises(ValueError, match=r"nowhere has no results.csv: give a grid's work directory"):
        grid_report.compare([str(tmp_path / "nowhere")], [("dividemix", "coteaching")])


def test_plot_is_written_and_no_temporary_file_is_left(tmp_path):
    config = _grid_config(auto_methods=(), seeds=(0,))
    config.grid.noise_types = ("idn", "symmetric")
    workdir = str(tmp_path / "grid")
    grid.run(config, workdir, train_fn=_FakeTrain(), log=lambda line: None)
    png = pathlib.Path(workdir, "accuracy_vs_noise.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert sorted(p for p in os.listdir(workdir) if not os.path.isdir(os.path.join(workdir, p))) == [
        "accuracy_vs_noise.png", "grid_config.json", "results.csv", "results.md",
    ]


def test_incompatible_workdir_is_refused_and_the_grid_may_grow(tmp_path):
    config = _grid_config(methods=("ce",), auto_methods=(), rates=(0.2,), seeds=(0,))
    workdir = str(tmp_path / "grid")
    grid.run(config, workdir, train_fn=_FakeTrain(), log=lambda line: None)
    before = _snapshot(workdir)

    changed = _grid_config(methods=("ce",), auto_methods=(), rates=(0.2,), seeds=(0,))
    changed.train.epochs = 10
    train = _FakeTrain()
    with pytest.raises(ValueError, match=r"different training config \(train.epochs\)"):
        grid.run(changed, workdir, train_fn=train)
    with pytest.raises(ValueError, match="train.epochs"):
        grid_report.report(workdir, changed)
    assert train.calls == [] and _snapshot(workdir) == before

    # More seeds, methods and rates, and keys each cell sets, are compatible.
    grown = _grid_config(methods=("ce", "mixup"), auto_methods=("mixup",), rates=(0.2, 0.45), seeds=(0, 1))
    grown.noise.rate, grown.seed = 0.3, 7
    grid.run(grown, workdir, train_fn=train, log=lambda line: None)
    assert len(train.calls) == 3 * 2 * 2 - 1
    assert json.load(open(os.path.join(workdir, "grid_config.json")))["grid"]["seeds"] == [0, 1]

    with pytest.raises(ValueError, match="not a grid work directory"):
        grid_report.report(str(tmp_path / "nothing"))


def _tiny_dataset(data_dir=None):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(96, 8, 8, 1), dtype=np.uint8)
    y = rng.integers(0, 3, size=96)
    return data.Dataset("tiny", x[:64], y[:64], x[64:], y[64:], 3)


def test_real_training_of_a_one_cell_grid(tmp_path, monkeypatch):
    # CE: the grid runs every method alike, and CE is the quickest to train
    # (tests/test_training.py trains CausalNL and every baseline for real).
    monkeypatch.setitem(data.LOADERS, "tiny", _tiny_dataset)
    config = _grid_config(methods=("ce",), auto_methods=(), rates=(0.3,), seeds=(0,))
    config.data.name = "tiny"
    config.model.classifier = "small_cnn"
    config.model.z_dim = 2
    config.model.ramp_epochs = 2
    config.train.epochs = 1
    config.train.batch_size = 16
    config.train.eval_batch_size = 32
    config.train.verbose = 0
    workdir = str(tmp_path / "grid")
    lines = []
    table = grid.run(config, workdir, log=lines.append)

    cell_dir = os.path.join(workdir, "ce", "idn-0.3", "seed0")
    results = json.load(open(os.path.join(cell_dir, "results.json")))
    cell_config = json.load(open(os.path.join(cell_dir, "config.json")))
    assert (cell_config["model"]["method"], cell_config["noise"]["rate"],
            cell_config["model"]["forget_rate"]) == ("ce", 0.3, 0.3)
    assert f"| ce | **{100 * results[METRIC]:.2f} (n=1)** |" in table
    assert lines[0].startswith("[1/1] done: ce IDN-0.3 seed 0")
    assert training.summarize(os.path.join(cell_dir, "metrics.csv"))[METRIC] == results[METRIC]


def test_estimate_table_compares_estimated_and_realised_rates(tmp_path):
    config, workdir = _grid_config(), str(tmp_path / "grid")
    table = grid.run(config, workdir, train_fn=_FakeTrain(), log=lambda line: None)
    # The fake realises rate + 0.001 and estimates rate - 0.01 for the auto cells:
    # 20.10 vs 19.00 -> error 1.10 points; 45.10 vs 44.00; equal over seeds, so std 0.
    assert grid_report.estimate_table(grid_report.collect(config, workdir)).splitlines()[2:] == [
        "| IDN-20% | 20.10 ± 0.00 | 19.00 ± 0.00 | 1.10 | 2 |",
        "| IDN-45% | 45.10 ± 0.00 | 44.00 ± 0.00 | 1.10 | 2 |",
    ]
    assert "estimated from the noisy labels alone" in table
    ce_only = _grid_config(methods=("ce",), auto_methods=())
    assert grid_report.estimate_table(grid_report.collect(ce_only, workdir)) == ""


def test_shards_split_the_cells_between_processes(tmp_path):
    config, workdir = _grid_config(), str(tmp_path / "grid")
    first, second = _FakeTrain(), _FakeTrain()
    grid.run(config, workdir, train_fn=first, log=lambda line: None, shard=0, num_shards=2)
    grid.run(config, workdir, train_fn=second, log=lambda line: None, shard=1, num_shards=2)
    everything = [os.path.join(workdir, c.workdir) for c in grid_cells.cells(config)]
    assert [w for _, w in first.calls] == everything[0::2]
    assert [w for _, w in second.calls] == everything[1::2]
    # Each process reports every finished cell, its own and the other's.
    assert "12 of 12 cells finished" in open(os.path.join(workdir, "results.md")).read()
    with pytest.raises(ValueError, match=r"shard must be in \[0, num_shards=2\)"):
        grid.run(config, workdir, train_fn=first, shard=2, num_shards=2)


@pytest.mark.parametrize("name, runs", [("fmnist_grid_cpu", 150), ("fmnist_grid_resnet18", 250)])
def test_shipped_grid_configs_load_into_table_1_grids(name, runs):
    import importlib.util

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    cells = grid_cells.cells(config)
    assert len(cells) == runs
    # The paper's nine methods: DivideMix and InstanceGM came after its Table 1.
    assert set(training.METHODS) - {"dividemix", "instancegm"} == {cell.method for cell in cells}
    assert grid_cells.cell_config(config, cells[-1]).model.forget_rate == "auto"
