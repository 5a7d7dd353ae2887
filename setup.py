"""Packaging for tf_causalnl: CausalNL (Yao et al., NeurIPS 2021) in Keras 3."""

import setuptools

# Pinned to compatible releases of the stack this project is tested on.
# tensorboard: TensorFlow 2.21 no longer depends on it, but keras-tuner imports
# it on every trial and Keras' TensorBoard callback writes its summaries.
# importlib_resources: tensorflow-datasets needs it to prepare a dataset and
# does not declare it.
INSTALL_REQUIRES = [
    "tensorflow~=2.21.0",
    "keras~=3.15.1",
    # The [tf] extra pulls tf-keras, which TFP 0.25 imports at first use;
    # tf-keras must stay on TensorFlow's minor version.
    "tensorflow-probability[tf]~=0.25.0",
    "tf-keras~=2.21.0",
    "tensorflow-datasets~=4.9.10",
    # [bayesian]: BayesianOptimization needs scipy and scikit-learn.
    "keras-tuner[bayesian]~=1.4.8",
    "absl-py~=2.5",
    "ml-collections~=1.1.0",
    "tensorboard~=2.21.0",
    "importlib_resources>=6.0",
    "numpy>=1.26,<3",
    "matplotlib~=3.11.2",
]

setuptools.setup(
    name="tf_causalnl",
    version="0.1.0",
    description=(
        "CausalNL: instance-dependent label-noise learning under a structural "
        "causal model, as a Keras 3 / TensorFlow model."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["tf_causalnl", "tf_causalnl.*"]),
    install_requires=INSTALL_REQUIRES,
    # pandas: LabelIssues.to_dataframe, for users who ask for a frame (and its
    # test). pytest-xdist: the suite runs in two processes (pytest.ini).
    # ruff: tests/test_lint.py lints the code with it (pyproject.toml).
    # benchmark: what scripts/label_issues_benchmark.py compares with.
    extras_require={"dev": ["pytest>=8", "pytest-xdist>=3.5,<4", "pandas>=2.1,<4", "ruff==0.17.6"],
                    "benchmark": ["cleanlab==2.9.0", "pandas>=2.1,<4"]},
    license="Apache-2.0",
)
