"""CausalNL's generative half learns images: the regression test of a blank decoder.

Under Appendix B's weights taken literally (the L1 error averaged over the
pixels, beta0 = beta1 = 0.1) the noisy-label term, which reaches p(X|Y,Z)
through the reconstruction x1 that p(Y~|Y,X) reads, trained the decoder and
the reconstruction term did not: every tile of reconstructions.png was blank,
and the error stayed at that of an all-black image. These tests fit CausalNL
on small structured images, where a decoder that learns anything reconstructs
far better than the per-pixel median image, and check the tiles themselves.
"""

import numpy as np
import pytest

from tf_causalnl import CausalNL, networks, pictures

SHAPE, CLASSES = (16, 16, 1), 3


def structured_images(n, seed=0):
    """Class 0 a horizontal bar, 1 a vertical bar, 2 a square; position and brightness vary.

    Returns uint8 images (n, 16, 16, 1) and their classes.
    """
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, CLASSES, n)
    images = np.zeros((n, *SHAPE), np.float32)
    for i, c in enumerate(classes):
        row, col = rng.integers(2, 10, size=2)
        brightness = rng.uniform(0.6, 1.0)
        if c == 0:
            images[i, row:row + 3, 1:15] = brightness
        elif c == 1:
            images[i, 1:15, col:col + 3] = brightness
        else:
            images[i, row:row + 6, col:col + 6] = brightness
    return (255 * images).astype(np.uint8), classes


def _noisy(labels, rate, seed=0):
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < rate
    return np.where(flip, (labels + rng.integers(1, CLASSES, len(labels))) % CLASSES, labels)


@pytest.fixture(scope="module")
def trained():
    """CausalNL with the default objective, fitted 10 epochs on 20%-noisy labels of 768 images."""
    x, y = structured_images(768, seed=0)
    model = CausalNL(networks.build_small_cnn(SHAPE, CLASSES), z_dim=4, vae_width=8, forget_rate=0.2,
                     ramp_epochs=2)
    model.compile(optimizer="adam")
    history = model.fit(x, _noisy(y, 0.2), batch_size=32, epochs=10, verbose=0)
    x_test, y_test = structured_images(256, seed=1)
    return model, history, x_test, y_test


def test_reconstructions_beat_the_median_image_clearly(trained):
    model, history, x_test, _ = trained
    quality = pictures.reconstruction_quality(model, x_test)
    assert quality["reconstruction_l1"] < 0.7 * quality["median_image_l1"], quality
    train_l1 = history.history["reconstruction"]
    assert train_l1[-1] < 0.6 * train_l1[0], train_l1


def test_reconstruction_tiles_are_not_blank_and_follow_their_image(trained):
    """The tiles reconstructions.png shows: not constant, and each closer to its own image than to others."""
    model, _, x_test, _ = trained
    _, tiles = pictures.reconstruct(model, x_test[:32])
    images = x_test[:32].astype(np.float32) / 255.0
    assert tiles.reshape(32, -1).std(axis=1).min() > 0.05
    distances = np.abs(images.reshape(32, 1, -1) - tiles.reshape(1, 32, -1)).mean(axis=-1)
    own = np.diag(distances)
    assert np.mean(own < np.median(distances, axis=0)) > 0.9


def test_reconstruction_quality_of_a_perfect_and_a_blank_decoder():
    """The median-image baseline by hand: images 0/1 with 1 in a quarter of the pixels."""
    x = np.zeros((4, 2, 2, 1), np.uint8)
    for i in range(4):
        x[i].flat[i] = 255  # each image lights a different pixel: per-pixel median 0
    model = CausalNL(networks.build_small_cnn((2, 2, 1), 2), z_dim=1, vae_width=2)
    quality = pictures.reconstruction_quality(model, x)
    assert quality["median_image_l1"] == pytest.approx(0.25)
    assert 0.0 <= quality["reconstruction_l1"] <= 1.0
    with pytest.raises(ValueError, match="x is empty"):
        pictures.reconstruction_quality(model, x[:0])
