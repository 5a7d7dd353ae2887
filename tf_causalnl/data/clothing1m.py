"""Clothing1M (Xiao et al. 2015): real noisy labels, images read from files.

Clothing1M's million training images do not fit in memory, so unlike the
datasets of `tf_causalnl.data` they stay on disk: `load` reads the annotation
lists of a folder in the layout the dataset is published in, and
`train_dataset` / `eval_dataset` decode the JPEG files as `tf.data` needs them.

The folder (`config.data.data_dir`) holds::

    images/0/00/<name>.jpg ...       the images, in any sub-folders
    noisy_label_kv.txt               "<key> <label>" per line: the noisy labels
    clean_label_kv.txt               "<key> <label>" per line: the clean labels
    noisy_train_key_list.txt         "<key>" per line: the training images
    clean_test_key_list.txt          "<key>" per line: the test images

where a key is an image's path relative to the folder (`images/0/00/x.jpg`)
and a label a class in 0..13. The four text files may instead sit in an
`annotations/` sub-folder. As in the paper (Section 4.1), training reads the
noisy training images with their noisy labels only, never the clean training
or validation images (`clean_train_key_list.txt` and `clean_val_key_list.txt`
are not read); the clean test images score the model.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tf_causalnl.data import epoch_batches, epoch_seeds

NAME = "clothing1m"
NUM_CLASSES = 14
#: Images are resized to RESIZE x RESIZE, then cropped to IMAGE_SIZE x IMAGE_SIZE.
RESIZE, IMAGE_SIZE = 256, 224
NOISY_LABELS, CLEAN_LABELS = "noisy_label_kv.txt", "clean_label_kv.txt"
TRAIN_KEYS, TEST_KEYS = "noisy_train_key_list.txt", "clean_test_key_list.txt"
ANNOTATIONS = "annotations"
LAYOUT = (
    "Clothing1M's published layout: the images under <folder>/images/ and the "
    f"files {NOISY_LABELS}, {CLEAN_LABELS}, {TRAIN_KEYS} and {TEST_KEYS} in "
    f"<folder> or <folder>/{ANNOTATIONS}/, keys being image paths relative to <folder>"
)


@dataclasses.dataclass
class FileDataset:
    """A labelled train/test split kept on disk as image files.

    Attributes:
        name: Dataset name.
        train_files: (N,) paths of the training images (str).
        train_labels: (N,) int64 training labels (Clothing1M's noisy ones).
        test_files: (M,) paths of the test images.
        test_labels: (M,) int64 test labels (clean).
        num_classes: Number of classes; labels lie in [0, num_classes).
    """

    name: str
    train_files: np.ndarray
    train_labels: np.ndarray
    test_files: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def load(data_dir: str | os.PathLike | None) -> FileDataset:
    """Reads the training and test lists of a Clothing1M folder (no image is decoded).

    Args:
        data_dir: The folder, in the layout of the module docstring.

    Returns:
        The noisy training keys with their noisy labels and the clean test
        keys with their clean labels, as paths under `data_dir`.

    Raises:
        FileNotFoundError: No folder, a missing annotation file, or the first
            image of a split missing.
        ValueError: A key without a label, a malformed line, a label outside
            [0, 14), or an empty split.
    """
    if not data_dir:
        raise ValueError(
            "Clothing1M has no default location: pass the folder you downloaded it "
            f"to (--config.data.data_dir=/path/to/clothing1m), in {LAYOUT}.")
    root = os.fspath(data_dir)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"The Clothing1M folder {root} does not exist; expected {LAYOUT}.")
    noisy = _read_labels(_find(root, NOISY_LABELS))
    clean = _read_labels(_find(root, CLEAN_LABELS))
    train_keys = _read_keys(_find(root, TRAIN_KEYS))
    test_keys = _read_keys(_find(root, TEST_KEYS))
    splits = [_split(root, train_keys, TRAIN_KEYS, noisy, NOISY_LABELS),
              _split(root, test_keys, TEST_KEYS, clean, CLEAN_LABELS)]
    (train_files, train_labels), (test_files, test_labels) = splits
    return FileDataset(NAME, train_files, train_labels, test_files, test_labels, NUM_CLASSES)


def _find(root: str, filename: str) -> str:
    for folder in (root, os.path.join(root, ANNOTATIONS)):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"Clothing1M annotation file {filename} is in neither {root} nor "
        f"{os.path.join(root, ANNOTATIONS)}; expected {LAYOUT}.")


def _lines(path: str) -> list[tuple[int, list[str]]]:
    with open(path) as f:
        return [(number, line.split()) for number, line in enumerate(f, start=1) if line.strip()]


def _read_keys(path: str) -> list[str]:
    keys = []
    for number, fields in _lines(path):
        if len(fields) != 1:
            raise ValueError(f"{path}, line {number}: expected one image key, got {' '.join(fields)!r}.")
        keys.append(fields[0])
    if not keys:
        raise ValueError(f"{path} lists no images; expected one image key per line.")
    return keys


def _read_labels(path: str) -> dict[str, int]:
    labels = {}
    for number, fields in _lines(path):
        if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) >= NUM_CLASSES:
            raise ValueError(
                f"{path}, line {number}: expected '<image key> <label in 0..{NUM_CLASSES - 1}>', "
                f"got {' '.join(fields)!r}.")
        labels[fields[0]] = int(fields[1])
    return labels


def _split(root: str, keys: list[str], keys_file: str, labels: dict[str, int],
           labels_file: str) -> tuple[np.ndarray, np.ndarray]:
    """(paths, int64 labels) of the keys; checks every label and the first image."""
    unlabelled = [key for key in keys if key not in labels]
    if unlabelled:
        raise ValueError(
            f"{len(unlabelled)} of the {len(keys)} images in {keys_file} have no label "
            f"in {labels_file}, e.g. {unlabelled[0]!r}; the two files do not belong together.")
    first = os.path.join(root, keys[0])
    if not os.path.isfile(first):
        raise FileNotFoundError(
            f"Image {first}, the first listed in {keys_file}, does not exist; expected {LAYOUT}.")
    files = np.array([os.path.join(root, key) for key in keys])
    return files, np.array([labels[key] for key in keys], dtype=np.int64)


def _decode(path: tf.Tensor, resize: int) -> tf.Tensor:
    """A JPEG file as RGB float32 in [0, 255], resized to resize x resize."""
    image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    return tf.image.resize(image, [resize, resize], antialias=True)


def _check_sizes(image_size: int, resize: int) -> None:
    if not 0 < image_size <= resize:
        raise ValueError(
            f"The crop (image_size={image_size}) must be positive and no larger "
            f"than the resized image (resize={resize}).")


def _options() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # Keep the order under parallel map.
    return options


def train_dataset(files: np.ndarray, labels: np.ndarray, *, batch_size: int, seed: int,
                  image_size: int = IMAGE_SIZE, resize: int = RESIZE, augment: bool = True,
                  flip: bool = True, shuffle: bool = True,
                  initial_epoch: int | None = None) -> tf.data.Dataset:
    """Shuffled, augmented training batches decoded from image files.

    Each image is decoded, resized to resize x resize, then cropped to
    image_size x image_size at a random place (the centre without `augment`)
    and mirrored with probability 1/2 (with `augment` and `flip`). Shuffling
    and augmentation are deterministic given `seed` and change each epoch, as
    in `data.train_dataset`; the last, smaller batch is dropped.

    Args:
        files: (N,) image paths.
        labels: (N,) integer labels, the training targets.
        batch_size: Examples per batch.
        seed: Seed of the shuffle and of the augmentation.
        image_size, resize: Crop and resize sizes in pixels.
        augment: Random crop (and flip) rather than the centre crop.
        flip: Whether augmentation mirrors images horizontally.
        shuffle: Whether to shuffle the examples each epoch.
        initial_epoch: None (one epoch per iteration), or the first epoch of
            an endless stream whose epochs depend only on (seed, epoch), as
            in `data.train_dataset`.

    Returns:
        A dataset of `(images float32 in [0, 1], int32 labels)`.
    """
    n = len(files)
    if len(labels) != n:
        raise ValueError(f"{n} image files but {len(labels)} labels.")
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size={batch_size} gives no full batch from {n} images; use a "
            "batch_size between 1 and the number of images.")
    _check_sizes(image_size, resize)
    files, labels = tf.constant(files), tf.constant(np.asarray(labels, np.int32))

    def epoch(epoch_seed: tf.Tensor) -> tf.data.Dataset:
        # One stateless seed per example, split from its batch's seed.
        batches = epoch_batches(n, batch_size, epoch_seed, shuffle=shuffle)
        return batches.flat_map(lambda index, pair: tf.data.Dataset.from_tensor_slices(
            (index, tf.random.experimental.stateless_split(pair, batch_size))))

    def example(index: tf.Tensor, pair: tf.Tensor):
        image = _decode(tf.gather(files, index), resize)
        if augment:
            crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(pair, 2))
            image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], crop_seed)
            if flip:
                image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        else:
            image = _centre_crop(image, image_size, resize)
        return image / 255.0, tf.gather(labels, index)

    ds = epoch_seeds(seed, initial_epoch).flat_map(epoch)
    ds = ds.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size, drop_remainder=True)
    if initial_epoch is None:
        # flat_map hides the epoch's length; Keras needs it (see data.train_dataset).
        ds = ds.apply(tf.data.experimental.assert_cardinality(n // batch_size))
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _centre_crop(image: tf.Tensor, image_size: int, resize: int) -> tf.Tensor:
    start = (resize - image_size) // 2
    return image[start:start + image_size, start:start + image_size]


def eval_dataset(files: np.ndarray, labels: np.ndarray, *, batch_size: int,
                 image_size: int = IMAGE_SIZE, resize: int = RESIZE) -> tf.data.Dataset:
    """Evaluation batches in file order: resized, centre-cropped, every image.

    Returns:
        A dataset of `(images float32 in [0, 1], int32 labels)`.
    """
    _check_sizes(image_size, resize)
    ds = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int32)))
    ds = ds.map(lambda path, y: (_centre_crop(_decode(path, resize), image_size, resize) / 255.0, y),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(_options())
