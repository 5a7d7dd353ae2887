"""The README's promises: its opening example runs, and CI runs its test command."""

import pathlib
import re

import numpy as np

from tf_causalnl import data

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _tiny_fashion_mnist(data_dir=None):
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
    labels = lambda n: rng.integers(0, 10, size=n)
    return data.Dataset("fashion_mnist", images(64), labels(64), images(32), labels(32), 10)


def test_the_opening_example_runs(monkeypatch):
    """Runs the README's first Python block as written, on 64 tiny examples."""
    example = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.setattr(data, "load_fashion_mnist", _tiny_fashion_mnist)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    probabilities = namespace["probabilities"]
    assert probabilities.shape == (32, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert namespace["history"].history["val_accuracy"]


def test_ci_runs_the_readme_test_command_verbatim():
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", README, re.S)
    test_command = next(c.strip() for c in commands if "pytest" in c)
    ci_script = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci_script.splitlines()
