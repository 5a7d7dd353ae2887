"""Shapes and sizes of the networks of Appendix C and the classifiers."""

import keras
import numpy as np
import pytest

from tf_causalnl import networks


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "shape, depth",
    [((28, 28, 1), 4), ((32, 32, 3), 4), ((8, 8, 1), 4), ((72, 100, 3), 5), ((224, 224, 3), 5)],
)
def test_image_networks_fit_the_image(shape, depth):
    assert networks.default_vae_depth(shape) == depth
    encoder = networks.build_latent_encoder(shape, 10, 25)
    decoder = networks.build_decoder(shape, 10, 25)
    noisy = networks.build_noisy_label_decoder(shape, 10)
    assert [tuple(o.shape) for o in encoder.outputs] == [(None, 25), (None, 25)]
    assert tuple(decoder.output.shape) == (None, *shape)
    assert tuple(noisy.output.shape) == (None, 10)
    strided = [l for l in encoder.layers if isinstance(l, keras.layers.Conv2D)]
    assert [l.filters for l in strided] == [32, 64, 128, 256, 512][:depth]
    transposed = [l for l in decoder.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert len(transposed) == depth


def test_vae_width_sets_the_maps_of_every_conv_layer():
    encoder = networks.build_latent_encoder((28, 28, 1), 10, 25, width=16)
    decoder = networks.build_decoder((28, 28, 1), 10, 25, width=16)
    strided = [l.filters for l in encoder.layers if isinstance(l, keras.layers.Conv2D)]
    transposed = [l.filters for l in decoder.layers if isinstance(l, keras.layers.Conv2DTranspose)]
    assert strided == [16, 32, 64, 128]
    assert transposed == [64, 32, 16, 16]
    assert tuple(decoder.output.shape) == (None, 28, 28, 1)
    with pytest.raises(ValueError, match="positive number of maps"):
        networks.build_latent_encoder((28, 28, 1), 10, 25, width=0)


def test_decoder_outputs_images_in_the_unit_interval():
    decoder = networks.build_decoder((28, 28, 1), 3, 2)
    out = decoder.predict([np.random.normal(size=(4, 2)) * 10, np.eye(3)[[0, 1, 2, 0]]], verbose=0)
    assert out.shape == (4, 28, 28, 1) and out.min() >= 0.0 and out.max() <= 1.0


def test_vector_networks_are_mlps():
    encoder = networks.build_latent_encoder((2,), 2, 1)
    decoder = networks.build_decoder((2,), 2, 1)
    noisy = networks.build_noisy_label_decoder((2,), 2)
    assert not any(isinstance(l, keras.layers.Conv2D) for m in (encoder, decoder, noisy) for l in m.layers)
    assert tuple(decoder.output.shape) == (None, 2)
    assert tuple(noisy.output.shape) == (None, 2)


@pytest.mark.parametrize("name, params", [("resnet18", 11_173_962), ("resnet34", 21_282_122), ("resnet50", 23_520_842)])
def test_cifar_resnets_have_the_standard_size(name, params):
    # The trainable parameters of the common CIFAR ResNets with 10 classes.
    model = networks.build_classifier(name, (32, 32, 3), 10)
    assert _trainable(model) == params
    assert tuple(model.output.shape) == (None, 10)


def test_imagenet_stem_downsamples_by_four_before_the_blocks():
    model = networks.build_resnet((32, 32, 3), 10, 18, stem="imagenet")
    pool = next(l for l in model.layers if isinstance(l, keras.layers.MaxPooling2D))
    assert tuple(pool.output.shape) == (None, 8, 8, 64)
    # Same blocks as the CIFAR stem; only the first convolution is 7x7.
    assert _trainable(model) == 11_173_962 + (7 * 7 - 3 * 3) * 3 * 64


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown classifier 'vgg'; choose one of \['mlp', 'resnet18'"):
        networks.build_classifier("vgg", (28, 28, 1), 10)
    with pytest.raises(ValueError, match="depth must be one of"):
        networks.build_resnet((32, 32, 3), 10, depth=101)
    with pytest.raises(ValueError, match="stem must be"):
        networks.build_resnet((32, 32, 3), 10, stem="vit")


def test_imagenet_preprocessing_matches_keras_applications():
    images = np.random.default_rng(0).uniform(size=(2, 5, 7, 3)).astype(np.float32)
    expected = keras.applications.resnet50.preprocess_input(images * 255.0)
    out = keras.ops.convert_to_numpy(networks.ImageNetPreprocessing()(images))
    np.testing.assert_allclose(out, expected, atol=1e-4)


def _preprocessing_model():
    x_in = keras.Input((4, 4, 3))
    h = networks.ImageNetPreprocessing(name="imagenet_preprocessing")(x_in)
    return keras.Model(x_in, keras.layers.Dense(2)(keras.layers.Flatten()(h)))


def test_imagenet_preprocessing_survives_save_load_and_clone(tmp_path):
    model = _preprocessing_model()
    images = np.random.default_rng(1).uniform(size=(3, 4, 4, 3)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("imagenet_preprocessing"), networks.ImageNetPreprocessing)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)
    clone = keras.models.clone_model(model)
    assert isinstance(clone.get_layer("imagenet_preprocessing"), networks.ImageNetPreprocessing)
    np.testing.assert_allclose(
        keras.Model(clone.input, clone.get_layer("imagenet_preprocessing").output)(images),
        keras.Model(model.input, model.get_layer("imagenet_preprocessing").output)(images), atol=1e-5)


def test_resnet50_imagenet_without_weights_is_initialised_afresh_in_the_clone():
    model = networks.build_classifier("resnet50_imagenet", (32, 32, 3), 14)
    assert [l.name for l in model.layers] == ["image", "imagenet_preprocessing", "resnet50", "logits"]
    assert tuple(model.output.shape) == (None, 14)
    clone = networks.fresh_clone(model, "test")
    assert not np.array_equal(model.get_layer("resnet50").get_weights()[0],
                              clone.get_layer("resnet50").get_weights()[0])


def test_pretrained_weights_reach_both_networks_but_not_the_head(tmp_path):
    # A stand-in for the ImageNet weights (nothing is downloaded): a headless
    # ResNet-50's weights saved to a file, loaded as `weights`.
    body = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    body.save_weights(tmp_path / "notop.weights.h5")
    model = networks.build_imagenet_resnet50((32, 32, 3), 14, weights=str(tmp_path / "notop.weights.h5"))
    pretrained = model.get_layer("pretrained_resnet50")
    for loaded, saved in zip(pretrained.get_weights(), body.get_weights()):
        np.testing.assert_array_equal(loaded, saved)

    clone = networks.fresh_clone(model, "test")
    for copied, original in zip(clone.get_layer("pretrained_resnet50").get_weights(), pretrained.get_weights()):
        np.testing.assert_array_equal(copied, original)
    assert not np.array_equal(clone.get_layer("logits").get_weights()[0], model.get_layer("logits").get_weights()[0])


def test_resnet50_imagenet_refuses_grey_or_tiny_images():
    with pytest.raises(ValueError, match=r"needs RGB images of at least 32x32 pixels.*\(28, 28, 1\)"):
        networks.build_classifier("resnet50_imagenet", (28, 28, 1), 10)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\)"):
        networks.build_classifier("resnet50_imagenet", (16, 16, 3), 10)
