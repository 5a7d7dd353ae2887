"""Datasets as arrays: FashionMNIST's IDX files, tensorflow-datasets, or the user's arrays.

`load_dataset(name)` returns a `Dataset` of uint8 images (or float vectors)
and integer labels; nothing here downloads at test time.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
import os
import struct
import zlib
from typing import Callable
import numpy as np
from tf_causalnl import validation


_log = logging.getLogger(__name__)


DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


_INSTALL = "apt-get install dataset-fashion-mnist"


_REINSTALL = "apt-get install --reinstall dataset-fashion-mnist"


@dataclasses.dataclass
class Dataset:
    """A labelled train/test split held in memory.

    Attributes:
        name: Dataset name, e.g. "cifar10".
        x_train: uint8 images (N, H, W, C), or float32 vectors (N, D).
        y_train: int64 labels (N,).
        x_test: Test inputs, same layout as `x_train`.
        y_test: int64 test labels.
        num_classes: Number of classes; labels lie in [0, num_classes).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the batch dimension."""
        return tuple(self.x_train.shape[1:])


class IDXFormatError(ValueError):
    """An IDX file is corrupt, truncated or not an unsigned-byte IDX file."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an unsigned-byte IDX file (the MNIST format), gzipped or plain.

    Args:
        path: File to read; a name ending in ".gz" is decompressed.

    Returns:
        A uint8 array with the dimensions given in the file's header.

    Raises:
        IDXFormatError: Not valid gzip, not an unsigned-byte IDX file, or a
            payload not exactly as long as the dimensions say.
    """
    path = os.fspath(path)
    fix = (f"reinstall the files with `{_REINSTALL}`"
           if os.path.basename(path) in FASHION_MNIST_FILES.values()
           else "re-create or re-download the file")

    def fail(problem: str) -> IDXFormatError:
        return IDXFormatError(f"{path}: {problem}; {fix}.")

    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            raw = f.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise fail(f"not a valid gzip file, or cut short ({err})") from err
    if len(raw) < 4:
        raise fail(f"file is {len(raw)} bytes long, too short for an IDX header")
    zeros, type_code, ndim = struct.unpack(">HBB", raw[:4])
    if zeros != 0 or type_code != 0x08 or ndim == 0:
        magic = struct.unpack(">I", raw[:4])[0]
        raise fail(f"magic number 0x{magic:08X} is not an unsigned-byte IDX file")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise fail(f"header declares {ndim} dimensions but the file ends first")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if min(dims) < 0:
        raise fail(f"negative dimension in {dims}")
    expected, found = int(np.prod(dims, dtype=np.int64)), len(raw) - header
    if found != expected:
        kind = "truncated" if found < expected else "too long"
        raise fail(f"{kind}: expected {expected:,} bytes of data for dimensions "
                   f"{dims}, found {found:,}")
    # A copy: arrays over `bytes` are read-only.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def load_fashion_mnist(data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads FashionMNIST from the four IDX files of `dataset-fashion-mnist`.

    The files are read directly, never through TFDS: Debian re-compresses
    them, so TFDS' checksums would reject them.

    Args:
        data_dir: Folder holding the four `*-ubyte.gz` files. When None, uses
            `DEFAULT_FASHION_MNIST_DIR`, or falls back to TFDS (which
            downloads) when the files are not there.

    Returns:
        The dataset, images (N, 28, 28, 1) uint8, 10 classes.

    Raises:
        FileNotFoundError: Files missing in an explicit `data_dir`, or missing
            in the default folder and the TFDS download failed.
        ValueError: The files are corrupt or inconsistent.
    """
    folder = os.fspath(data_dir if data_dir is not None else DEFAULT_FASHION_MNIST_DIR)
    paths = {k: os.path.join(folder, f) for k, f in FASHION_MNIST_FILES.items()}
    missing = [os.path.basename(p) for p in paths.values() if not os.path.isfile(p)]
    if missing and data_dir is not None:
        raise FileNotFoundError(
            f"FashionMNIST files missing in {folder}: {', '.join(missing)}. "
            f"Install them with `{_INSTALL}` (into {DEFAULT_FASHION_MNIST_DIR}), "
            "or pass the folder that holds the four files."
        )
    if missing:
        _log.warning(
            "FashionMNIST files not found in %s (missing %s); loading "
            "fashion_mnist through TFDS instead.", folder, ", ".join(missing))
        try:
            return load_tfds("fashion_mnist")
        except Exception as err:  # Download errors come in many types.
            raise FileNotFoundError(
                f"FashionMNIST files are not in {folder} (missing "
                f"{', '.join(missing)}) and the TFDS download failed "
                f"({type(err).__name__}: {err}). Install them with `{_INSTALL}`, "
                "or pass data_dir= the folder that holds the four files."
            ) from err
    arrays = {k: read_idx(p) for k, p in paths.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        problems = [
            (x.ndim != 3 or x.shape[1:] != (28, 28), f"images of shape {x.shape}"),
            (y.ndim != 1, f"labels of shape {y.shape}"),
            (len(x) != len(y), f"{len(x):,} images but {len(y):,} labels"),
            (y.ndim == 1 and y.size and y.max() >= 10, "labels outside [0, 10)"),
        ]
        for bad, problem in problems:
            if bad:
                raise ValueError(
                    f"FashionMNIST {split} files in {folder}: {problem}, expected "
                    f"(N, 28, 28) images and N labels in [0, 10); reinstall them "
                    f"with `{_REINSTALL}`.")
    return Dataset("fashion_mnist", arrays["x_train"][..., None],
                   arrays["y_train"].astype(np.int64), arrays["x_test"][..., None],
                   arrays["y_test"].astype(np.int64), num_classes=10)


def load_tfds(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads the train and test splits of a TFDS image dataset into memory.

    Args:
        name: TFDS name: "cifar10", "cifar100", "svhn_cropped" or
            "fashion_mnist".
        data_dir: TFDS data folder; None for TFDS' default.

    Returns:
        The dataset, images uint8 (N, H, W, C), labels int64.
    """
    import tensorflow_datasets as tfds  # Lazy: importing TFDS is slow.

    splits, info = tfds.load(
        name, split=["train", "test"], as_supervised=True, with_info=True,
        data_dir=data_dir)
    # One batch of the whole split (what `batch_size=-1` does, but sized by
    # the split's cardinality: under `tfds.testing.mock_data` the split sizes
    # in `info` are 0 and TFDS would batch by sys.maxsize, aborting TF).
    (x_train, y_train), (x_test, y_test) = [
        tfds.as_numpy(ds.batch(max(int(ds.cardinality()), 1)).get_single_element())
        for ds in splits
    ]
    return Dataset(name, np.asarray(x_train, np.uint8), np.asarray(y_train, np.int64),
                   np.asarray(x_test, np.uint8), np.asarray(y_test, np.int64),
                   num_classes=int(info.features["label"].num_classes))


def _as_model_inputs(x: np.ndarray) -> np.ndarray:
    """Checked inputs as the pipelines hold them: (N, H, W) images gain a channel axis, floats become float32."""
    if np.issubdtype(x.dtype, np.floating) or x.ndim == 2:
        x = x.astype(np.float32, copy=False)
    return x[..., None] if x.ndim == 3 else x


def from_arrays(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                y_test: np.ndarray, *, num_classes: int | None = None,
                name: str = "arrays") -> Dataset:
    """Wraps user-supplied NumPy arrays as a validated `Dataset`.

    Args:
        x_train: Images (N, H, W) or (N, H, W, C), uint8 or float; or
            vectors (N, D), stored as float32.
        y_train: Integer labels (N,).
        x_test: Test inputs, same layout as `x_train`.
        y_test: Integer test labels.
        num_classes: Number of classes; None infers max label + 1.
        name: Name of the dataset.

    Returns:
        The dataset; (N, H, W) images gain a channel axis.

    Raises:
        ValueError: The rules of `validation.check_inputs` and
            `validation.check_labels` (rank, no examples, non-finite values,
            float images outside [0, 1], labels not whole numbers in
            [0, num_classes)), or mismatched shapes or counts.
    """
    x_train = _as_model_inputs(validation.check_inputs(x_train, "x_train"))
    x_test = _as_model_inputs(validation.check_inputs(x_test, "x_test"))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"x_train examples have shape {x_train.shape[1:]} but x_test "
            f"examples have shape {x_test.shape[1:]}; give both sets the same shape.")
    labels = {key: validation.check_labels(y, key, len(x), num_classes)
              for key, y, x in (("y_train", y_train, x_train), ("y_test", y_test, x_test))}
    if num_classes is None:
        num_classes = int(max(y.max(initial=-1) for y in labels.values())) + 1
    return Dataset(name, x_train, labels["y_train"], x_test, labels["y_test"], num_classes=int(num_classes))


LOADERS: dict[str, Callable[..., Dataset]] = {
    "fashion_mnist": load_fashion_mnist,
    "cifar10": functools.partial(load_tfds, "cifar10"),
    "cifar100": functools.partial(load_tfds, "cifar100"),
    "svhn_cropped": functools.partial(load_tfds, "svhn_cropped"),
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads a dataset by name through `LOADERS`.

    Raises:
        ValueError: `name` is not a key of `LOADERS`.
    """
    if name not in LOADERS:
        raise ValueError(
            f"Unknown dataset {name!r}; valid names: {', '.join(sorted(LOADERS))}.")
    return LOADERS[name](data_dir=data_dir)
