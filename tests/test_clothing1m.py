"""Tests for tf_causalnl.clothing1m: the folder layout, the splits and the pipelines."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl.data import clothing1m


@pytest.mark.parametrize("in_annotations", [False, True], ids=["root", "annotations"])
def test_load_reads_noisy_training_and_clean_test_splits(make_clothing1m, in_annotations):
    root, expected = make_clothing1m(in_annotations=in_annotations)
    dataset = clothing1m.load(str(root))

    assert (dataset.name, dataset.num_classes) == ("clothing1m", 14)
    for split in ("train", "test"):
        keys, labels = zip(*expected[split])
        files = getattr(dataset, f"{split}_files")
        assert list(files) == [os.path.join(str(root), key) for key in keys]
        np.testing.assert_array_equal(getattr(dataset, f"{split}_labels"), labels)
        assert getattr(dataset, f"{split}_labels").dtype == np.int64
        assert all(os.path.isfile(f) for f in files)
    # The first training image also has a clean label; training sees its noisy one.
    assert dataset.train_labels[0] == expected["train"][0][1]


def test_missing_annotation_file_names_it_and_the_layout(make_clothing1m):
    root, _ = make_clothing1m(in_annotations=True)
    os.remove(root / "annotations" / "clean_test_key_list.txt")
    with pytest.raises(FileNotFoundError, match=(
            r"clean_test_key_list.txt is in neither .*clothing1m nor .*clothing1m/annotations; "
            r"expected Clothing1M's published layout: the images under <folder>/images/")):
        clothing1m.load(root)


def test_missing_folder_or_no_folder_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere does not exist; expected"):
        clothing1m.load(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no default location: .*--config.data.data_dir="):
        clothing1m.load("")


def test_inconsistent_annotations_are_reported(make_clothing1m):
    root, expected = make_clothing1m()
    first_key = expected["train"][0][0]
    labels = (root / "noisy_label_kv.txt").read_text().splitlines()
    (root / "noisy_label_kv.txt").write_text("\n".join(labels[1:]) + "\n")
    with pytest.raises(ValueError, match=(
            rf"1 of the 8 images in noisy_train_key_list.txt have no label in "
            rf"noisy_label_kv.txt, e.g. '{first_key}'")):
        clothing1m.load(root)

    (root / "noisy_label_kv.txt").write_text("\n".join([f"{first_key} 14", *labels[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"noisy_label_kv.txt, line 1: expected '<image key> <label in 0..13>'"):
        clothing1m.load(root)


def test_a_missing_image_is_reported(make_clothing1m):
    root, expected = make_clothing1m()
    os.remove(root / expected["test"][0][0])
    with pytest.raises(FileNotFoundError, match=r"the first listed in clean_test_key_list.txt, does not exist"):
        clothing1m.load(root)


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_train_dataset_crops_flips_and_reshuffles_each_epoch_from_the_seed(make_clothing1m):
    root, _ = make_clothing1m(n_train=8)
    dataset = clothing1m.load(root)
    make = lambda seed: clothing1m.train_dataset(
        dataset.train_files, dataset.train_labels, batch_size=3, seed=seed, image_size=24, resize=32)
    ds = make(seed=0)
    assert int(ds.cardinality()) == 2  # 8 images, the last partial batch dropped
    first, second = _batches(ds), _batches(ds)
    for images, labels in first:
        assert images.shape == (3, 24, 24, 3) and images.dtype == np.float32
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert labels.dtype == np.int32 and set(labels) <= set(dataset.train_labels)
    # Another epoch: another order and other crops; the same seed repeats both.
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, second))
    again = make(seed=0)
    for (a, la), (b, lb) in zip(first, _batches(again)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, _batches(make(seed=1))))


def test_eval_dataset_centre_crops_every_image_in_order(make_clothing1m):
    root, _ = make_clothing1m(n_test=5, size=32)
    dataset = clothing1m.load(root)
    ds = clothing1m.eval_dataset(dataset.test_files, dataset.test_labels, batch_size=2,
                                 image_size=16, resize=32)
    batches = _batches(ds)
    images = np.concatenate([x for x, _ in batches])
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), dataset.test_labels)
    assert images.shape == (5, 16, 16, 3)
    # Resizing 32 to 32 keeps the pixels; the centre 16x16 is rows and columns 8..23.
    decoded = tf.io.decode_jpeg(tf.io.read_file(dataset.test_files[0]), channels=3).numpy()
    np.testing.assert_allclose(images[0], decoded[8:24, 8:24] / 255.0, atol=1e-5)
    # Without augmentation the training pipeline crops the same way.
    train = clothing1m.train_dataset(dataset.test_files, dataset.test_labels, batch_size=5, seed=0,
                                     image_size=16, resize=32, augment=False, shuffle=False)
    np.testing.assert_allclose(_batches(train)[0][0], images, atol=1e-6)


def test_sizes_and_batch_are_checked():
    files, labels = np.array(["a.jpg", "b.jpg"]), np.array([0, 1])
    with pytest.raises(ValueError, match=r"image_size=40\) must be positive and no larger than .*resize=32"):
        clothing1m.eval_dataset(files, labels, batch_size=2, image_size=40, resize=32)
    with pytest.raises(ValueError, match="batch_size=3 gives no full batch from 2 images"):
        clothing1m.train_dataset(files, labels, batch_size=3, seed=0)
