"""The paper's illustration (Fig. 2): two moons with 45% instance-dependent noise.

Two interleaved half-circles, one per class, in 2-D; the training labels are
corrupted with the same instance-dependent noise as the image benchmarks
(`noise.make_noisy_labels("idn", ...)`, here on the two coordinates). CE,
Co-teaching, Mixup and CausalNL train MLP classifiers through the common
entry point (`training.build_model` from a config, then `fit`); CausalNL's
Z is 1-dimensional, the manifold constraint the paper credits for recovering
the clean labels (Section 2). `run` trains all four over several seeds, writes
the four-panel figure (noisy training data and the decision regions of
Co-teaching, Mixup and CausalNL) and a table of clean test accuracy.

With two classes, the noise of Xia et al. has one place to send a flipped
label; what varies with the instance is only the flip rate, drawn per
example around the requested rate.
"""

import dataclasses
import io
import os

import keras
import ml_collections
import numpy as np

from tf_causalnl import noise
from tf_causalnl.checkpoints import write_bytes, write_csv
from tf_causalnl.training import registry

#: The methods of Fig. 2 (CE added as the reference), in the figure's order.
TITLES = {"ce": "CE", "coteaching": "Co-teaching", "mixup": "Mixup", "causalnl": "CausalNL"}


def make_moons(n: int, *, spread: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half-circles in 2-D, n // 2 points per class.

    Class 0 lies on the upper unit half-circle, class 1 on a lower one shifted
    by (1, 0.5); Gaussian noise of standard deviation `spread` is added.

    Returns:
      (float32 points (n, 2), int64 labels (n,)), shuffled.
    """
    rng = np.random.default_rng(seed)
    sizes = (n // 2, n - n // 2)
    angles = [rng.uniform(0.0, np.pi, size) for size in sizes]
    upper = np.stack([np.cos(angles[0]), np.sin(angles[0])], axis=1)
    lower = np.stack([1.0 - np.cos(angles[1]), 0.5 - np.sin(angles[1])], axis=1)
    x = np.concatenate([upper, lower]) + rng.normal(0.0, spread, (n, 2))
    y = np.repeat([0, 1], sizes)
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order].astype(np.int64)


@dataclasses.dataclass
class MoonsData:
    """Standardised moons: clean and noisy training labels, clean test labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    noisy_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def realized_rate(self) -> float:
        return float(np.mean(self.noisy_train != self.y_train))


def moons_data(config: ml_collections.ConfigDict) -> MoonsData:
    """The training and test moons of `config.moons`, with IDN on the training labels.

    Both sets are standardised with the training set's mean and deviation;
    the noise sees the standardised coordinates.
    """
    m = config.moons
    x_train, y_train = make_moons(m.train_size, spread=m.spread, seed=config.seed)
    x_test, y_test = make_moons(m.test_size, spread=m.spread, seed=config.seed + 10_000)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    noisy = noise.make_noisy_labels(
        config.noise.type, y_train, 2, config.noise.rate, features=x_train,
        std=config.noise.std, seed=config.seed, match_rate=config.noise.match_rate)
    return MoonsData(x_train, y_train, noisy, x_test, y_test)


def train_method(config: ml_collections.ConfigDict, method: str, moons: MoonsData) -> keras.Model:
    """Trains `method` on the noisy moons through `training.build_model` and `fit`."""
    config = ml_collections.ConfigDict(config.to_dict())
    config.model.method = method
    keras.utils.set_random_seed(config.seed)
    model = registry.build_model(config, moons.x_train.shape[1:], 2)
    model.fit(moons.x_train, {"noisy": moons.noisy_train, "clean": moons.y_train},
              batch_size=config.train.batch_size, epochs=config.train.epochs, verbose=0)
    return model


def clean_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of `model`'s predicted classes against clean labels."""
    predictions = np.argmax(model.predict(x, batch_size=4096, verbose=0), axis=-1)
    return float(np.mean(predictions == y))


def run(config: ml_collections.ConfigDict, out_dir: str, log=print) -> list[dict]:
    """Trains every method on every seed; writes moons.png, results.csv and results.md.

    The figure shows the first seed. Returns one row per (method, seed).
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for seed in config.moons.seeds:
        seeded = ml_collections.ConfigDict(config.to_dict())
        seeded.seed = int(seed)
        moons = moons_data(seeded)
        models = {}
        for method in config.moons.methods:
            models[method] = train_method(seeded, method, moons)
            accuracy = clean_accuracy(models[method], moons.x_test, moons.y_test)
            rows.append({"method": method, "seed": int(seed), "clean_test_accuracy": accuracy,
                         "realized_noise_rate": moons.realized_rate})
            log(f"seed {seed} {method:>10}: clean test accuracy {accuracy:.4f} "
                f"(realised noise {moons.realized_rate:.3f})")
        if seed == config.moons.seeds[0]:
            write_bytes(os.path.join(out_dir, "moons.png"), figure(moons, models))
    write_csv(os.path.join(out_dir, "results.csv"), rows, ("method", "seed", "clean_test_accuracy", "realized_noise_rate"))
    table = markdown_table(rows, config.moons.methods)
    write_bytes(os.path.join(out_dir, "results.md"), table.encode())
    log(table)
    return rows


def markdown_table(rows: list[dict], methods) -> str:
    """Mean ± sample std of clean test accuracy (%) per method, and each seed's value."""
    seeds = sorted({row["seed"] for row in rows})
    lines = ["| Method | mean ± std | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    for method in methods:
        values = [100 * r["clean_test_accuracy"] for r in rows if r["method"] == method]
        spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
        lines.append(f"| {TITLES.get(method, method)} | {np.mean(values):.2f} ± {spread:.2f} | "
                     + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines) + "\n"


def figure(moons: MoonsData, models: dict, resolution: int = 200) -> bytes:
    """Fig. 2 as PNG bytes: the noisy training data, then each model's decision regions."""
    import matplotlib  # noqa: PLC0415  (lazy: plotting is optional at import time)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [m for m in models if m != "ce"] or list(models)
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(4 * (1 + len(panels)), 3.6))
    low = moons.x_train.min(axis=0) - 0.5
    high = moons.x_train.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(low[0], high[0], resolution),
                         np.linspace(low[1], high[1], resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    colours = np.array(["tab:blue", "tab:orange"])

    axes[0].scatter(*moons.x_train.T, c=colours[moons.noisy_train], s=6)
    axes[0].set_title(f"(a) noisy training labels ({100 * moons.realized_rate:.0f}% flipped)")
    for ax, method, letter in zip(axes[1:], panels, "bcdefg"):
        model = models[method]
        regions = np.argmax(model.predict(grid, batch_size=8192, verbose=0), axis=-1)
        ax.contourf(gx, gy, regions.reshape(gx.shape), levels=[-0.5, 0.5, 1.5],
                    colors=["#c6dbef", "#fdd0a2"])
        ax.scatter(*moons.x_test.T, c=colours[moons.y_test], s=3)
        accuracy = clean_accuracy(model, moons.x_test, moons.y_test)
        ax.set_title(f"({letter}) {TITLES.get(method, method)}: {100 * accuracy:.1f}% clean")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


