"""Tests for tf_causalnl.data: IDX files, loaders and the tf.data pipelines."""

import gzip
import logging
import struct

import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import data
from tf_causalnl.data import sources


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: zero, zero, type code, rank, big-endian int32 dims, data."""
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path, payload: bytes):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)
    return path


def fake_fashion_mnist(folder, n_train=12, n_test=6, rng=None):
    """Writes the four FashionMNIST files with tiny random contents."""
    rng = rng or np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, filename in data.FASHION_MNIST_FILES.items():
        write(folder / filename, idx_bytes(arrays[key]))
    return arrays


# --- IDX files --------------------------------------------------------------

@pytest.mark.parametrize("filename", ["a-idx3-ubyte.gz", "a-idx3-ubyte"])
@pytest.mark.parametrize("shape", [(5, 4, 3), (7,)])
def test_read_idx_round_trip(tmp_path, filename, shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = data.read_idx(write(tmp_path / filename, idx_bytes(array)))
    assert out.dtype == np.uint8 and out.flags.writeable
    np.testing.assert_array_equal(out, array)


@pytest.mark.parametrize("filename", ["x.gz", "x"])
def test_read_idx_wrong_type_code(tmp_path, filename):
    path = write(tmp_path / filename, idx_bytes(np.zeros((2, 2, 2)), type_code=0x09))
    with pytest.raises(data.IDXFormatError,
                       match=r"x(\.gz)?: magic number 0x00000903 is not an unsigned-byte"):
        data.read_idx(path)


def test_read_idx_nonzero_magic_prefix(tmp_path):
    path = write(tmp_path / "x", b"\x12\x34\x08\x01" + struct.pack(">i", 1) + b"\x00")
    with pytest.raises(ValueError, match="magic number 0x12340801"):
        data.read_idx(path)


def test_read_idx_truncated(tmp_path):
    payload = idx_bytes(np.zeros((3, 4, 5)))[:-50]
    with pytest.raises(data.IDXFormatError,
                       match=r"truncated: expected 60 bytes of data .*found 10"):
        data.read_idx(write(tmp_path / "x.gz", payload))


def test_read_idx_too_long(tmp_path):
    payload = idx_bytes(np.zeros((3, 4))) + b"\x00\x00"
    with pytest.raises(data.IDXFormatError, match="too long: expected 12 bytes.*found 14"):
        data.read_idx(write(tmp_path / "x", payload))


def test_read_idx_header_cut_short(tmp_path):
    with pytest.raises(data.IDXFormatError, match="declares 3 dimensions"):
        data.read_idx(write(tmp_path / "x", struct.pack(">HBB", 0, 8, 3) + b"\x00" * 5))


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(idx_bytes(np.zeros((2, 3))))  # Plain bytes under a .gz name.
    with pytest.raises(data.IDXFormatError, match=r"x\.gz: not a valid gzip file"):
        data.read_idx(path)


def test_read_idx_gzip_stream_cut_short(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(200).reshape(20, 10)))[:30])
    with pytest.raises(data.IDXFormatError, match="not a valid gzip file"):
        data.read_idx(path)


def test_read_idx_fashion_mnist_file_names_the_package(tmp_path):
    path = write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(4))[:-1])
    with pytest.raises(data.IDXFormatError,
                       match="apt-get install --reinstall dataset-fashion-mnist"):
        data.read_idx(path)


# --- FashionMNIST -------------------------------------------------------------

def test_load_fashion_mnist_from_folder(tmp_path):
    arrays = fake_fashion_mnist(tmp_path)
    ds = data.load_fashion_mnist(tmp_path)
    assert (ds.name, ds.num_classes, ds.input_shape) == ("fashion_mnist", 10, (28, 28, 1))
    assert ds.x_train.shape == (12, 28, 28, 1) and ds.x_test.shape == (6, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["x_train"])
    np.testing.assert_array_equal(ds.y_test, arrays["y_test"])
    assert data.load_dataset("fashion_mnist", data_dir=tmp_path).x_test.shape[0] == 6


def test_load_fashion_mnist_missing_file(tmp_path):
    fake_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=(
            r"t10k-labels-idx1-ubyte\.gz.*apt-get install dataset-fashion-mnist")):
        data.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_count_mismatch(tmp_path):
    fake_fashion_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(11)))
    with pytest.raises(ValueError, match="train files .*12 images but 11 labels"):
        data.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_bad_label(tmp_path):
    fake_fashion_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.full(6, 10)))
    with pytest.raises(ValueError, match=r"test files .*labels outside \[0, 10\)"):
        data.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_bad_image_shape(tmp_path):
    fake_fashion_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((12, 28, 27))))
    with pytest.raises(ValueError, match=r"images of shape \(12, 28, 27\)"):
        data.load_fashion_mnist(tmp_path)


def test_load_fashion_mnist_default_dir_falls_back_to_tfds(
        tmp_path, monkeypatch, caplog, no_network):
    import tensorflow_datasets as tfds

    monkeypatch.setattr(sources, "DEFAULT_FASHION_MNIST_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING), tfds.testing.mock_data(num_examples=5):
        ds = data.load_fashion_mnist()
    assert "through TFDS" in caplog.text and str(tmp_path) in caplog.text
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.num_classes == 10


def test_load_fashion_mnist_fallback_download_fails(tmp_path, monkeypatch):
    def offline(name, data_dir=None):
        raise ConnectionError("Temporary failure in name resolution")
    monkeypatch.setattr(sources, "DEFAULT_FASHION_MNIST_DIR", str(tmp_path))
    monkeypatch.setattr(sources, "load_tfds", offline)
    with pytest.raises(FileNotFoundError, match=(
            r"not in .* TFDS download failed \(ConnectionError.*"
            r"apt-get install dataset-fashion-mnist")):
        data.load_fashion_mnist()


# --- TFDS datasets ------------------------------------------------------------

@pytest.mark.parametrize("name, shape, num_classes", [
    ("cifar10", (32, 32, 3), 10),
    ("cifar100", (32, 32, 3), 100),
    ("svhn_cropped", (32, 32, 3), 10),
])
def test_load_tfds(tmp_path, no_network, name, shape, num_classes):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        ds = data.load_dataset(name, data_dir=str(tmp_path))
    assert (ds.name, ds.num_classes, ds.input_shape) == (name, num_classes, shape)
    for x, y in [(ds.x_train, ds.y_train), (ds.x_test, ds.y_test)]:
        assert x.shape == (6, *shape) and x.dtype == np.uint8
        assert y.shape == (6,) and y.dtype == np.int64
        assert 0 <= y.min() and y.max() < num_classes


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="'mnist'.*cifar10, cifar100, fashion_mnist"):
        data.load_dataset("mnist")


def test_loaders_names():
    assert set(data.LOADERS) == {"fashion_mnist", "cifar10", "cifar100", "svhn_cropped"}


# --- from_arrays ----------------------------------------------------------------

def test_from_arrays_adds_channel_axis_and_infers_classes():
    x = np.zeros((4, 8, 8), np.uint8)
    ds = data.from_arrays(x, np.array([0, 1, 2, 1]), x[:2], np.array([0, 4]))
    assert ds.x_train.shape == (4, 8, 8, 1) and ds.x_train.dtype == np.uint8
    assert ds.num_classes == 5 and ds.y_train.dtype == np.int64
    assert ds.input_shape == (8, 8, 1) and ds.name == "arrays"


def test_from_arrays_vectors_become_float32():
    x = np.arange(12).reshape(4, 3)
    ds = data.from_arrays(x, np.zeros(4, int), x, np.zeros(4, int), num_classes=3)
    assert ds.x_train.dtype == np.float32 and ds.input_shape == (3,)
    assert ds.num_classes == 3


GOOD_X, GOOD_Y = np.zeros((4, 8, 8, 3), np.uint8), np.array([0, 1, 2, 0])


@pytest.mark.parametrize("override, kwargs, match", [
    ({"y_train": GOOD_Y[:3]}, {}, "y_train has 3 labels for 4 examples; give one label per example"),
    ({"y_test": GOOD_Y + 0.5}, {}, r"y_test has labels that are not whole numbers in 4 of its 4 examples "
                                   r"\(the first is example 0, 0.5\); give integer class ids"),
    ({"y_train": GOOD_Y[:, None]}, {}, r"y_train has shape \(4, 1\); give a 1-D array"),
    ({}, {"num_classes": 2}, r"y_train has labels outside \[0, 2\) in 1 of its 4 examples \(the first is "
                             r"example 2, 2\); map the labels to 0..1"),
    ({"y_test": np.array([0, -1, 1, 1])}, {}, r"y_test has negative labels in 1 of its 4 examples \(the first "
                                              r"is example 1, -1\)"),
    ({"x_train": np.full((4, 3), np.nan)}, {}, "x_train has NaN or infinite values in 4 of its 4 examples"),
    ({"x_test": np.full((4, 8, 8, 3), np.inf, np.float32)}, {}, "x_test has NaN"),
    ({"x_test": np.full((4, 8, 8, 3), 3.0, np.float32)}, {}, r"x_test has pixels outside \[0, 1\] .* pass uint8 "
                                                             r"images \(0-255\), or floats scaled to \[0, 1\]"),
    ({"x_train": np.zeros((0, 8, 8, 3), np.uint8)}, {}, "x_train has no examples"),
    ({"x_train": np.zeros((4, 2, 8, 8, 3))}, {}, "x_train has rank 5"),
    ({"x_test": np.zeros(4)}, {}, "x_test has rank 1"),
    ({"x_test": np.zeros((4, 8, 8, 1), np.uint8)}, {}, r"x_test examples have shape \(8, 8, 1\)"),
    ({"x_train": np.zeros((4, 8, 8, 3), np.int64)}, {}, "dtype int64; pass uint8"),
])
def test_from_arrays_errors(override, kwargs, match):
    # The rules of tf_causalnl.validation, which fit() applies too (tests/test_fit_checks.py).
    arrays = {"x_train": GOOD_X, "y_train": GOOD_Y, "x_test": GOOD_X, "y_test": GOOD_Y}
    arrays.update(override)
    with pytest.raises(ValueError, match=match):
        data.from_arrays(**arrays, **kwargs)


# --- tf.data pipelines ------------------------------------------------------------

def images(n=16, size=8, channels=1, seed=0):
    """Random uint8 images with no zero pixel, so zero padding is recognisable."""
    return np.random.default_rng(seed).integers(1, 256, (n, size, size, channels), np.uint8)


def batches(ds):
    """The dataset as a list of (images, y) NumPy pairs."""
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def test_to_float():
    x = np.array([0, 1, 128, 255], np.uint8)
    np.testing.assert_array_equal(data.to_float(x), x.astype(np.float32) / 255)
    assert data.to_float(x).dtype == tf.float32
    assert data.to_float(np.array([0.5, 2.0])).dtype == tf.float32
    graph_fn = tf.function(data.to_float, input_signature=[tf.TensorSpec([None], tf.uint8)])
    np.testing.assert_array_equal(graph_fn(x), x / np.float32(255))


def test_train_dataset_element_spec():
    x, y = images(), np.arange(16) % 3
    images_spec, y_spec = data.train_dataset(x, y, batch_size=4, seed=0).element_spec
    assert images_spec == tf.TensorSpec([4, 8, 8, 1], tf.float32)
    assert y_spec == tf.TensorSpec([4], tf.int32)
    ds = data.train_dataset(x, y, y + 1, batch_size=4, seed=0)
    assert ds.element_spec[1] == {"noisy": tf.TensorSpec([4], tf.int32),
                                  "clean": tf.TensorSpec([4], tf.int32)}
    assert ds.options().deterministic
    for b_images, _ in ds:
        assert 0.0 <= b_images.numpy().min() and b_images.numpy().max() <= 1.0


def test_train_dataset_without_shuffle_or_augment_is_the_input():
    x, y = images(n=10, channels=3), np.arange(10) % 3
    out = batches(data.train_dataset(x, y, batch_size=4, seed=0, shuffle=False,
                                     augment=False))
    assert len(out) == 2  # The last 2 examples are dropped.
    np.testing.assert_array_equal(np.concatenate([b[0] for b in out]), x[:8] / np.float32(255))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in out]), y[:8])
    out = batches(data.train_dataset(x, y, batch_size=4, seed=0, shuffle=False,
                                     augment=False, drop_remainder=False))
    assert [len(b[1]) for b in out] == [4, 4, 2]


def test_flip_only_gives_input_or_its_mirror():
    x = images(n=64, channels=3)
    out = np.concatenate([b[0] for b in batches(data.train_dataset(
        x, np.zeros(64), batch_size=16, seed=3, shuffle=False, crop_padding=0))])
    x = x / np.float32(255)
    same = np.all(out == x, axis=(1, 2, 3))
    mirrored = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored)
    assert 10 < same.sum() < 54  # Both happen, about half each.


def shifted(image, dy, dx, mirror):
    """`image` (H, W, C) shifted by (dy, dx) with zero fill, then mirrored."""
    h, w = image.shape[:2]
    p = max(abs(dy), abs(dx))
    padded = np.pad(image, [(p, p), (p, p), (0, 0)])
    crop = padded[p + dy:p + dy + h, p + dx:p + dx + w]
    return crop[:, ::-1] if mirror else crop


def test_crop_is_a_shifted_copy():
    x = images(n=32, channels=2)
    out = np.concatenate([b[0] for b in batches(data.train_dataset(
        x, np.zeros(32), batch_size=8, seed=5, shuffle=False, crop_padding=2))])
    out = np.round(out * 255).astype(np.uint8)
    found = []
    for original, augmented in zip(x, out):
        matches = [(dy, dx, m) for dy in range(-2, 3) for dx in range(-2, 3)
                   for m in (False, True)
                   if np.array_equal(shifted(original, dy, dx, m), augmented)]
        assert matches, "augmented image is not a shifted (and mirrored) copy"
        found.append(matches[0])
    dys, dxs, _ = zip(*found)
    assert set(dys) == set(dxs) == {-2, -1, 0, 1, 2}


def test_crop_by_hand():
    x = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)
    seen = set()
    for seed in range(40):
        (out, _), = batches(data.train_dataset(x, [0], batch_size=1, seed=seed,
                                                flip=False, crop_padding=1))
        seen.add(tuple(np.round(out[0, ..., 0] * 255).astype(int).ravel()))
    # Shifting down-right by one keeps the top-left 2x2 block.
    assert (0, 0, 0, 0, 1, 2, 0, 4, 5) in seen
    assert (5, 6, 0, 8, 9, 0, 0, 0, 0) in seen  # Up-left.
    assert len(seen) == 9  # Every shift in {-1, 0, 1}^2 shows up.


def test_same_seed_same_epoch_and_epochs_differ():
    x, y = images(n=32), np.arange(32) % 3
    first = batches(data.train_dataset(x, y, batch_size=8, seed=7))
    ds = data.train_dataset(x, y, batch_size=8, seed=7)
    again, second = batches(ds), batches(ds)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(again, second))
    other = batches(data.train_dataset(x, y, batch_size=8, seed=8))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_augmentation_changes_between_epochs():
    ds = data.train_dataset(images(n=16), np.zeros(16), batch_size=16, seed=1,
                            shuffle=False)
    (first, _), = batches(ds)
    (second, _), = batches(ds)
    assert not np.array_equal(first, second)


def test_labels_stay_aligned_with_images():
    n = 48
    x = np.repeat(np.arange(1, n + 1, dtype=np.uint8) * 5, 8 * 8).reshape(n, 8, 8, 1)
    clean = np.arange(n)  # Image i has every pixel 5 * (i + 1).
    ds = data.train_dataset(x, clean % 3, clean, batch_size=16, seed=2)
    seen = []
    for b_images, y in batches(ds):
        for image, noisy, true in zip(b_images, y["noisy"], y["clean"]):
            values = np.unique(np.round(image * 255))
            assert set(values) <= {0.0, 5.0 * (true + 1)}
            assert noisy == true % 3
            seen.append(true)
    assert sorted(seen) == list(range(n)) and seen != list(range(n))


def test_vectors_are_not_augmented():
    x = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
    (out, y), = batches(data.train_dataset(x, np.arange(12) % 3, batch_size=12, seed=0,
                                           shuffle=False))
    np.testing.assert_array_equal(out, x)
    assert out.dtype == np.float32 and y.dtype == np.int32


@pytest.mark.parametrize("drop_remainder, expected", [(True, 3), (False, 4)])
def test_train_dataset_knows_its_number_of_batches(drop_remainder, expected):
    ds = data.train_dataset(images(), np.zeros(16), batch_size=5, seed=0,
                            drop_remainder=drop_remainder)
    assert int(ds.cardinality()) == expected
    assert len(batches(ds)) == expected


@pytest.mark.parametrize("batch_size", [17, 0])
def test_batch_size_larger_than_data_raises(batch_size):
    with pytest.raises(ValueError, match=f"batch_size={batch_size} gives no batch from 16"):
        data.train_dataset(images(), np.zeros(16), batch_size=batch_size, seed=0)


def test_label_count_mismatch_raises():
    with pytest.raises(ValueError, match="16 examples but 15 labels"):
        data.train_dataset(images(), np.zeros(16), np.zeros(15), batch_size=4, seed=0)


def test_eval_dataset_keeps_order_and_every_example():
    x, y = images(n=10), np.arange(10) % 3
    ds = data.eval_dataset(x, y, batch_size=4)
    assert ds.element_spec == (tf.TensorSpec([None, 8, 8, 1], tf.float32),
                               tf.TensorSpec([None], tf.int32))
    out = batches(ds)
    assert [len(b[1]) for b in out] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in out]), x / np.float32(255))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in out]), y)


def test_an_epoch_depends_only_on_seed_and_epoch():
    """A stream started at epoch 2 replays epochs 2 and 3 of a stream started at 0."""
    x, y = images(n=24), np.arange(24) % 3
    steps = data.steps_per_epoch(24, 8)
    take = lambda ds, k: list(ds.take(k).as_numpy_iterator())
    from_zero = take(data.train_dataset(x, y, batch_size=8, seed=5, initial_epoch=0), 4 * steps)
    from_two = take(data.train_dataset(x, y, batch_size=8, seed=5, initial_epoch=2), 2 * steps)
    for a, b in zip(from_zero[2 * steps:], from_two, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    epochs = [np.concatenate([b[1] for b in from_zero[k * steps:(k + 1) * steps]]) for k in range(4)]
    assert all(sorted(e) == sorted(y) for e in epochs)  # every example once per epoch
    assert not np.array_equal(epochs[0], epochs[1])  # a new order each epoch
    assert not np.array_equal(from_zero[0][0], from_zero[steps][0])
