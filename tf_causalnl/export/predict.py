"""Predictions from an exported SavedModel or a .keras file, for images on disk, to CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Callable
import keras
import numpy as np
import tensorflow as tf
from tf_causalnl.checkpoints import write_atomically
from tf_causalnl.checkpoints import MODEL_FILE
from tf_causalnl.export.serving import DEFAULT_SIGNATURE, FLOAT_SIGNATURE, exported_classifier, integer_entries, serving_function, serving_signatures
from tf_causalnl import checkpoints


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


#: (class ids (B,), probabilities (B, K)) of one checked batch.
BatchFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Predictor:
    """Class probabilities from a trained run or an exported SavedModel.

    Attributes:
        source: What was loaded: a model.keras file or a SavedModel version directory.
        input_shape: Shape of one input, without the batch dimension.
        num_classes: Number of classes K.
        predict_batch: (class ids, probabilities) of a batch that passed `check_images`.
    """

    source: str
    input_shape: tuple[int, ...]
    num_classes: int
    predict_batch: BatchFn


def load_predictor(path: str | os.PathLike) -> Predictor:
    """Loads a run directory, a model.keras file, a SavedModel version directory,
    or a `<base_dir>/<model_name>` directory (its highest version)."""
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".keras"):
        return _keras_predictor(keras.saving.load_model(path, compile=False), path)
    if os.path.isfile(os.path.join(path, MODEL_FILE)):
        return _keras_predictor(checkpoints.load_run_model(path, compile=False), os.path.join(path, MODEL_FILE))
    return _saved_model_predictor(latest_version_dir(path))


def latest_version_dir(path: str | os.PathLike) -> str:
    """`path` if it holds a SavedModel, else its highest integer-named version that does."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such run directory or SavedModel.")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(v) for v in integer_entries(path)
                if os.path.isfile(os.path.join(path, v, "saved_model.pb"))]
    if not versions:
        raise FileNotFoundError(
            f"{path} is not a run directory (no {MODEL_FILE}), a SavedModel (no saved_model.pb) "
            "or a folder of SavedModel versions: pass a --workdir of scripts/train.py, or what "
            "scripts/export.py wrote.")
    return os.path.join(path, str(max(versions)))


def check_images(images: np.ndarray, input_shape: tuple[int, ...], source: str = "inputs") -> np.ndarray:
    """Checks inputs against a model's input shape; returns them as (N, *input_shape).

    Images may be uint8 (0-255) or float in [0, 1], shaped (N, H, W, C), or
    (N, H, W) for a one-channel model; vectors are float (N, D).

    Raises:
        ValueError: Wrong rank, channels, size, dtype or value range, naming `source`.
    """
    images = np.asarray(images)
    input_shape = tuple(input_shape)
    if len(input_shape) == 3 and input_shape[-1] == 1 and images.ndim == 3:
        images = images[..., np.newaxis]
    expected = "(N, " + ", ".join(map(str, input_shape)) + ")"
    if images.ndim != len(input_shape) + 1:
        also = " or (N, H, W)" if len(input_shape) == 3 and input_shape[-1] == 1 else ""
        raise ValueError(f"{source}: shape {images.shape} has the wrong rank; the model takes {expected}{also}.")
    if len(input_shape) == 3 and images.shape[-1] != input_shape[-1]:
        raise ValueError(f"{source}: images have {images.shape[-1]} channels; the model takes "
                         f"{input_shape[-1]} (shape {expected}).")
    if images.shape[1:] != input_shape:
        raise ValueError(f"{source}: shape {images.shape} does not match the model's input {expected}.")
    if len(images) == 0:
        raise ValueError(f"{source}: no inputs (shape {images.shape}).")
    is_image = len(input_shape) == 3
    if images.dtype == np.uint8 and is_image:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        kinds = "uint8 images (0-255) or float images in [0, 1]" if is_image else "float vectors"
        raise ValueError(f"{source}: dtype {images.dtype} is not supported; the model takes {kinds}.")
    if not np.all(np.isfinite(images)):
        raise ValueError(f"{source}: inputs contain NaN or infinite values.")
    if is_image and (images.min() < 0.0 or images.max() > 1.0):
        raise ValueError(
            f"{source}: float images must lie in [0, 1] (found {images.min():g} to {images.max():g}); "
            "store 0-255 pixel values as uint8, or divide them by 255.")
    return images.astype(np.float32, copy=False)


def read_inputs(path: str | os.PathLike, input_shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """(names, checked inputs) from a .npy file or a folder of PNG/JPEG images.

    Rows of a .npy file are named by their index; images of a folder by their
    file name, in sorted order, decoded to the model's channel count.
    """
    path = os.fspath(path)
    if _check_inputs_path(path) == "folder":
        return read_image_folder(path, input_shape)
    images = check_images(np.load(path, allow_pickle=False), input_shape, source=path)
    return [str(i) for i in range(len(images))], images


def _check_inputs_path(path: str) -> str:
    """"folder" or "npy", or a clear error: checked before a model is loaded."""
    if os.path.isdir(path):
        return "folder"
    if not path.endswith(".npy"):
        raise ValueError(f"{path}: inputs must be a .npy file or a folder of PNG/JPEG images.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file.")
    return "npy"


def read_image_folder(folder: str, input_shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """(file names, uint8 images (N, H, W, C)) of the PNG/JPEG files in `folder`, sorted by name."""
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3, 4):
        raise ValueError(f"{folder}: a folder of images needs a model of 1, 3 or 4-channel images; "
                         f"this one takes inputs of shape {tuple(input_shape)}: pass a .npy file.")
    names = sorted(n for n in os.listdir(folder)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, n)))
    if not names:
        raise ValueError(f"{folder}: no PNG or JPEG files ({', '.join(IMAGE_EXTENSIONS)}).")
    height, width, channels = input_shape
    images = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            image = tf.io.decode_image(tf.io.read_file(path), channels=channels, dtype=tf.uint8,
                                       expand_animations=False).numpy()
        except tf.errors.InvalidArgumentError as err:
            raise ValueError(f"{path}: not a readable PNG or JPEG image ({err.message}).") from err
        if image.shape[:2] != (height, width):
            raise ValueError(f"{path}: image is {image.shape[0]}x{image.shape[1]} pixels (height x width); "
                             f"the model takes {height}x{width}. Resize the images first.")
        images.append(image)
    return names, np.stack(images)


def predict_images(predictor: Predictor, images: np.ndarray,
                   batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(class ids int64 (N,), probabilities float32 (N, K)) of checked inputs, in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    images = check_images(images, predictor.input_shape)
    batches = [predictor.predict_batch(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return (np.concatenate([ids for ids, _ in batches]).astype(np.int64),
            np.concatenate([p for _, p in batches]).astype(np.float32))


def write_predictions_csv(path: str | os.PathLike, names: list[str], class_ids: np.ndarray,
                          probabilities: np.ndarray) -> None:
    """Writes `input,class_id,probability_0..probability_{K-1}` atomically (temporary file, then rename)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(temporary):
        with open(temporary, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["input", "class_id", *(f"probability_{k}" for k in range(probabilities.shape[1]))])
            for name, class_id, row in zip(names, class_ids, probabilities):
                writer.writerow([name, int(class_id), *(f"{p:.9g}" for p in row)])

    write_atomically(path, write)


def predict_to_csv(model: str | os.PathLike, inputs: str | os.PathLike, output: str | os.PathLike,
                   batch_size: int = 256) -> int:
    """What `scripts/predict.py` does: load, read and check every input, predict, write the CSV.

    Returns:
        The number of rows written.
    """
    _check_inputs_path(os.fspath(inputs))
    predictor = load_predictor(model)
    names, images = read_inputs(inputs, predictor.input_shape)
    class_ids, probabilities = predict_images(predictor, images, batch_size)
    write_predictions_csv(output, names, class_ids, probabilities)
    return len(names)


def _keras_predictor(model: keras.Model, source: str) -> Predictor:
    """The serving functions of an export, run on the loaded model itself."""
    classifier = exported_classifier(model)
    input_shape = tuple(classifier.input_shape[1:])
    serve = serving_function(classifier, input_shape)
    functions = {spec.dtype.as_numpy_dtype: tf.function(serve, input_signature=[spec])
                 for spec in serving_signatures(input_shape).values()}

    def predict_batch(batch):
        result = functions[batch.dtype.type](batch)
        return result["class_ids"].numpy(), result["probabilities"].numpy()

    return Predictor(source, input_shape, int(classifier.output_shape[-1]), predict_batch)


def _saved_model_predictor(version_dir: str) -> Predictor:
    loaded = tf.saved_model.load(version_dir)
    default = loaded.signatures.get(DEFAULT_SIGNATURE)
    outputs = default.structured_outputs if default is not None else {}
    inputs = default.structured_input_signature[1] if default is not None else {}
    if len(inputs) != 1 or not {"probabilities", "class_ids"} <= set(outputs):
        raise ValueError(f"{version_dir}: the SavedModel has no {DEFAULT_SIGNATURE} signature with one "
                         "input and probabilities and class_ids outputs; export it with tf_causalnl.export.")
    (key, spec), = inputs.items()

    def predict_batch(batch):
        # Through `loaded`, which must outlive its signatures (it owns their variables).
        name = DEFAULT_SIGNATURE if batch.dtype == spec.dtype.as_numpy_dtype else FLOAT_SIGNATURE
        signature = loaded.signatures.get(name, default)
        result = signature(**{key: tf.constant(batch)})
        return result["class_ids"].numpy(), result["probabilities"].numpy()

    return Predictor(version_dir, tuple(spec.shape[1:]), int(outputs["probabilities"].shape[-1]), predict_batch)
