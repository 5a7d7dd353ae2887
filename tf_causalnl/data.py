"""Datasets and `tf.data` input pipelines for CausalNL.

Loaders return a `Dataset` of in-memory NumPy arrays (uint8 images, int64
labels): FashionMNIST is read from the IDX files of the Debian package
`dataset-fashion-mnist`; CIFAR-10/100 and SVHN come from TensorFlow Datasets;
`from_arrays` wraps user data. `train_dataset` and `eval_dataset` turn arrays
into batched `tf.data` pipelines; images stay uint8 in memory and within the
pipeline until `to_float` scales each batch to [0, 1]. Clothing1M, too large
for memory, is read from its image files by `tf_causalnl.clothing1m`.
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
import tensorflow as tf

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


def to_float(images: tf.Tensor) -> tf.Tensor:
    """Scales uint8 images to float32 in [0, 1]; other inputs cast to float32."""
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def _take_rows(images: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Gathers rows `index` (B, K) of each image (B, H, W, C); rows outside
    [0, H) come out as zeros, as if the images were zero-padded."""
    height = images.shape[1]
    images = tf.concat([images, tf.zeros_like(images[:, :1])], axis=1)  # Row H: zeros.
    index = tf.where((index >= 0) & (index < height), index, height)
    return tf.gather(images, index, axis=1, batch_dims=1)


def _augment(images: tf.Tensor, seed: tf.Tensor, padding: int, flip: bool) -> tf.Tensor:
    """Random crop of the zero-padded batch and random horizontal flip.

    Each example is shifted by its own offset in [-padding, padding] along
    both axes, filling with zeros: the same pixels as cropping an H x W window
    out of the image padded with `padding` zeros, without building the padded
    batch. Rows, then columns (as rows of the transposed batch: gathering
    whole rows is much faster than single pixels) are picked with
    `tf.gather(batch_dims=1)`, so pixels are copied exactly. A flip reverses
    the example's column indices.
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    shifts = tf.random.stateless_uniform(
        [batch, 2], crop_seed, minval=-padding, maxval=padding + 1, dtype=tf.int32)
    rows = shifts[:, :1] + tf.range(height)[None]  # (B, H)
    cols = shifts[:, 1:] + tf.range(width)[None]  # (B, W)
    if flip:
        mirror = tf.random.stateless_uniform([batch], flip_seed) < 0.5
        cols = tf.where(mirror[:, None], tf.reverse(cols, axis=[1]), cols)
    images = _take_rows(images, rows)
    images = _take_rows(tf.transpose(images, [0, 2, 1, 3]), cols)
    return tf.transpose(images, [0, 2, 1, 3])


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # Keep batch order under parallel map.
    return options


def epoch_seeds(seed: int, initial_epoch: int | None = None) -> tf.data.Dataset:
    """Stateless seeds (int64 pairs), one per epoch, that a training pipeline draws from.

    Args:
        seed: The run's seed.
        initial_epoch: None gives one seed, new each time the dataset is
            iterated (Keras iterates it once per epoch). An integer k gives
            the endless sequence of seeds of epochs k, k + 1, ..., each a
            function of (seed, epoch) alone: a run resumed at epoch k sees
            exactly the data an uninterrupted run saw at epoch k.
    """
    if initial_epoch is None:
        return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).take(1)
    base = tf.constant([seed, 0], tf.int64)
    return tf.data.Dataset.counter(start=initial_epoch, dtype=tf.int64).map(
        lambda epoch: tf.random.experimental.stateless_fold_in(base, epoch))


def epoch_batches(n: int, batch_size: int, epoch_seed: tf.Tensor, *, shuffle: bool = True,
                  drop_remainder: bool = True) -> tf.data.Dataset:
    """The batches of one epoch: (int64 indices into the N examples, a stateless seed).

    A fresh permutation of 0..n-1 (with `shuffle`), cut into batches, and one
    seed per batch for its augmentation, all drawn from `epoch_seed`: a
    uniform shuffle with no shuffle buffer to fill (which would copy every
    example and stall the first batch of each epoch).
    """
    order_seed, batch_seed = tf.unstack(tf.random.experimental.stateless_split(epoch_seed, 2))
    indices = tf.range(n, dtype=tf.int64)
    if shuffle:
        indices = tf.random.experimental.stateless_shuffle(indices, order_seed)
    num_batches = n // batch_size if drop_remainder else -(-n // batch_size)
    seeds = tf.random.experimental.stateless_split(batch_seed, num_batches)
    return tf.data.Dataset.zip(
        tf.data.Dataset.from_tensor_slices(indices).batch(batch_size, drop_remainder=drop_remainder),
        tf.data.Dataset.from_tensor_slices(seeds))


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Batches in one epoch of `train_dataset`."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def train_dataset(x: np.ndarray, noisy_labels: np.ndarray,
                  clean_labels: np.ndarray | None = None, *, batch_size: int,
                  seed: int, shuffle: bool = True, augment: bool = True,
                  crop_padding: int = 4, flip: bool = True,
                  drop_remainder: bool = True,
                  initial_epoch: int | None = None) -> tf.data.Dataset:
    """Shuffled, batched, augmented training pipeline.

    Each batch is gathered from the in-memory uint8 array by a vector of
    indices, augmented as a whole (`_augment`), then scaled by `to_float`:
    one vectorised map per batch, no per-example work. Shuffling and
    augmentation are deterministic given `seed` and change from one epoch
    to the next.

    Two forms (see `epoch_seeds`):
      - `initial_epoch=None`: one epoch per iteration, re-shuffled each
        time Keras iterates it: `fit(ds, epochs=E)`.
      - `initial_epoch=k`: an endless stream of epochs k, k + 1, ..., each a
        function of (seed, epoch) alone, for `fit(ds, epochs=E,
        initial_epoch=k, steps_per_epoch=steps_per_epoch(N, batch_size))`.
        A run restarted at epoch k then replays exactly what an
        uninterrupted run saw; `training.train` uses this form.

    Args:
        x: uint8 images (N, H, W, C) or float vectors (N, D), kept in memory.
        noisy_labels: Observed (noisy) labels (N,), the training targets.
        clean_labels: Optional true labels (N,), carried for diagnostics only.
        batch_size: Examples per batch.
        seed: Seed of the shuffle and of the augmentation.
        shuffle: Whether to shuffle the examples each epoch.
        augment: Whether to randomly crop and flip images (never vectors).
        crop_padding: Zero padding on each side before the random crop.
        flip: Whether to randomly mirror images horizontally.
        drop_remainder: Whether to drop the last, smaller batch.
        initial_epoch: None, or the first epoch of an endless stream (above).

    Returns:
        A dataset of `(images, y)`: images float32 in [0, 1]; `y` the int32
        noisy labels, or `{"noisy": ..., "clean": ...}` when `clean_labels`
        is given.

    Raises:
        ValueError: Mismatched lengths, or `batch_size` larger than the
            number of examples when `drop_remainder` is True.
    """
    n = len(x)
    if batch_size < 1 or (drop_remainder and batch_size > n):
        raise ValueError(
            f"batch_size={batch_size} gives no batch from {n} examples with "
            "drop_remainder=True; use a batch_size between 1 and the number "
            "of examples, or drop_remainder=False.")
    y = np.asarray(noisy_labels).astype(np.int32)
    if clean_labels is not None:
        y = {"noisy": y, "clean": np.asarray(clean_labels).astype(np.int32)}
    for labels in tf.nest.flatten(y):
        if len(labels) != n:
            raise ValueError(f"{n} examples but {len(labels)} labels.")
    images, targets = tf.constant(x), tf.nest.map_structure(tf.constant, y)
    augment = augment and images.shape.rank == 4 and bool(crop_padding or flip)

    def make_batch(index: tf.Tensor, pair: tf.Tensor):
        batch = tf.gather(images, index)
        if augment:
            batch = _augment(batch, pair, crop_padding, flip)
        return to_float(batch), tf.nest.map_structure(lambda t: tf.gather(t, index), targets)

    ds = epoch_seeds(seed, initial_epoch).flat_map(
        lambda epoch_seed: epoch_batches(n, batch_size, epoch_seed, shuffle=shuffle,
                                         drop_remainder=drop_remainder))
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if initial_epoch is None:
        # flat_map hides the epoch's length; Keras needs it for its progress
        # bar and to know an epoch ended without running off the data.
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            steps_per_epoch(n, batch_size, drop_remainder)))
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def eval_dataset(x: np.ndarray, labels: np.ndarray, *,
                 batch_size: int) -> tf.data.Dataset:
    """Evaluation pipeline: batched in order, no augmentation, every example.

    Returns:
        A dataset of `(images float32 in [0, 1], int32 labels)`.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(labels).astype(np.int32)))
    ds = ds.batch(batch_size).map(
        lambda images, y: (to_float(images), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())
