"""tf.data pipelines: seeded per-epoch shuffling and augmentation, batches for fit and evaluate.

Every epoch's order and augmentation are functions of (seed, epoch), so a run
resumed after a kill replays them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


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
                  initial_epoch: int | None = None, with_index: bool = False) -> tf.data.Dataset:
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
        with_index: Whether the labels also carry each example's position in
            `x` as "index" (for models that keep a value per example, DivideMix).

    Returns:
        A dataset of `(images, y)`: images float32 in [0, 1]; `y` the int32
        noisy labels, or `{"noisy": ..., "clean": ...}` when `clean_labels`
        is given (and "index" with `with_index`).

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
    if with_index:
        y = {**(y if isinstance(y, dict) else {"noisy": y}), "index": np.arange(n, dtype=np.int32)}
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
