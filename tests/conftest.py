"""Shared test set-up: fast CPU kernels, two logical CPU devices, shared fixtures.

The CPU must be split into logical devices before TensorFlow initialises its
runtime, so this runs at collection time, before any test touches TensorFlow.
"""

import os
import socket

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """The process's MirroredStrategy (`distribute.make_strategy`), over the two logical CPUs.

    The same object `training.train` uses for `train.strategy="mirrored"`: a
    second MirroredStrategy over the same devices could reuse its
    collective keys.
    """
    from tf_causalnl.training import distribute  # noqa: PLC0415

    strategy = distribute.make_strategy(distribute.MIRRORED)
    assert strategy.num_replicas_in_sync == 2
    return strategy


@pytest.fixture
def no_network(monkeypatch):
    """Makes any attempt to open a network connection fail loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"test tried to reach the network: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same Python, NumPy and TensorFlow seeds."""
    keras.utils.set_random_seed(1234)
    yield
    # Without Python's full garbage collection: its cost grows with everything
    # earlier tests left alive, and run after each of 350 tests it made the
    # suite's last files several times slower than they are on their own.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(autouse=True)
def _pictures_only_where_tested(request, monkeypatch):
    """`training.train` draws its pictures only in tests marked `pictures`.

    Drawing adds seconds to each of the suite's many small training runs; the
    tests marked `pictures` and tests/test_pictures.py cover it.
    """
    if "pictures" not in request.keywords:
        from tf_causalnl.training import run as training_run  # noqa: PLC0415

        monkeypatch.setattr(training_run, "write_pictures", lambda *args, **kwargs: [])


@pytest.fixture
def make_clothing1m(tmp_path):
    """Writes a tiny Clothing1M folder in the published layout.

    Returns a function (n_train, n_test, size, in_annotations) -> (root,
    expected): random size x size JPEGs under images/, the annotation files in
    the root or in annotations/, and `expected` = {"train": [(key, noisy
    label)], "test": [(key, clean label)]}. Some training images also have a
    (different) clean label, and clean validation images exist, as in the
    real dataset; neither should reach the splits.
    """
    def make(n_train=8, n_test=4, size=64, in_annotations=False):
        rng = np.random.default_rng(0)
        root = tmp_path / "clothing1m"
        keys = [f"images/{i % 10}/{i % 100:02d}/{i}.jpg" for i in range(n_train + n_test + 2)]
        for key in keys:
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            (root / key).write_bytes(tf.io.encode_jpeg(pixels).numpy())
        train, test, val = keys[:n_train], keys[n_train:n_train + n_test], keys[n_train + n_test:]
        noisy = {key: int(rng.integers(14)) for key in train}
        clean = {key: int(rng.integers(14)) for key in test + val}
        clean[train[0]] = (noisy[train[0]] + 1) % 14  # a clean training label: never used
        annotations = root / "annotations" if in_annotations else root
        annotations.mkdir(exist_ok=True)
        files = {
            "noisy_label_kv.txt": [f"{k} {v}" for k, v in noisy.items()],
            "clean_label_kv.txt": [f"{k} {v}" for k, v in clean.items()],
            "noisy_train_key_list.txt": train,
            "clean_val_key_list.txt": val,
            "clean_test_key_list.txt": test,
        }
        for name, lines in files.items():
            (annotations / name).write_text("\n".join(lines) + "\n")
        return root, {"train": [(k, noisy[k]) for k in train], "test": [(k, clean[k]) for k in test]}

    return make


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory):
    """One run of scripts/train.py on the FashionMNIST CPU config, made once per session.

    Training a model is most of the cost of a test that runs a script, so the
    tests of the command line (tests/test_training.py) and of
    scripts/pictures.py on a run it made (tests/test_pictures.py) share this
    run. Returns a namespace of `command`, `done` (the finished process, which
    each test checks) and `workdir`; a test that changes the work directory
    copies it first.
    """
    import pathlib  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import types  # noqa: PLC0415

    from tf_causalnl import data  # noqa: PLC0415

    if not os.path.exists(os.path.join(data.DEFAULT_FASHION_MNIST_DIR, data.FASHION_MNIST_FILES["x_train"])):
        pytest.skip("needs the FashionMNIST files: apt-get install dataset-fashion-mnist")
    root = pathlib.Path(__file__).resolve().parents[1]
    workdir = tmp_path_factory.mktemp("cli") / "run"
    command = [
        sys.executable, str(root / "scripts" / "train.py"),
        "--config", str(root / "configs" / "fmnist_idn45_cpu.py"),
        "--workdir", str(workdir),
        "--config.data.train_size=64", "--config.data.test_size=40",
        "--config.train.epochs=1", "--config.train.batch_size=32",
        "--config.noise.rate=0.2", "--config.train.verbose=0",
        "--config.model.vae_depth=1",  # not 4: tracing the train step, most of the run, takes ~40% less
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return types.SimpleNamespace(command=command, done=done, workdir=workdir)


@pytest.fixture
def eager():
    """Runs Keras' train, test and predict steps eagerly, untraced.

    Tracing a model's train step costs 10-30 s on a 2-core CPU (two ResNet-50s
    over a minute), far more than the few steps a test runs. Tests of what
    surrounds the step (the configs, `training.train`'s work directory for each
    method) use this; tf.data pipelines are traced as always. The traced steps
    are tested where they are the subject: each model's `fit` in
    tests/test_causalnl.py and tests/test_baselines.py, and `training.train`
    end to end in tests/test_training.py and from the command line. tf.data
    warns that the option does not apply to it; the tests using this fixture
    silence that warning with a `filterwarnings` mark.
    """
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)
