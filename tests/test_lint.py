"""The code passes its linter (ruff, configured in pyproject.toml).

Pyflakes' rules find a name used but never defined or imported, an import
or local never used, and a name redefined before its first use; the syntax
check holds the code to the oldest Python that setup.py admits (3.10).
"""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "tf_causalnl", "scripts", "tests"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
