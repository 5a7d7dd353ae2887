"""Export for TF Serving, and predictions from a run or an export.

`export_classifier` writes branch 1's classifier (the clean-label q(Y|X) that
training produces) as a SavedModel in TF Serving's layout,
`<base_dir>/<model_name>/<version>/`, with two signatures:

  serving_default  uint8 images (N, H, W, C) named "images", scaled to [0, 1]
                   in the graph exactly as training scaled them
                   (`data.to_float`); for a vector classifier, float32 inputs
                   (N, D) named "features" (its only signature)
  serving_float    float32 images already in [0, 1] (image classifiers only)

Both return {"probabilities": float32 (N, K), "class_ids": int64 (N,)} and
reject inputs of another dtype or shape. A version directory appears only
complete: the SavedModel is written into a temporary sibling whose name is
not an integer (TF Serving loads only integer-named versions), then renamed.

`load_predictor` loads a run directory (its model.keras) or an export;
`read_inputs`, `predict_images` and `write_predictions_csv` do the rest of
`scripts/predict.py` (`predict_to_csv`). docs/SERVING.md shows the commands.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import numbers
import os
import shutil
import uuid
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

# Imported for their registered classes, which model.keras files name.
import tf_causalnl.baselines  # noqa: F401
import tf_causalnl.causalnl  # noqa: F401
from tf_causalnl.data import to_float
from tf_causalnl.checkpoints import write_atomically

MODEL_FILE = "model.keras"
DEFAULT_SIGNATURE = "serving_default"
FLOAT_SIGNATURE = "serving_float"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_TRAIN = "python scripts/train.py --config configs/<experiment>.py --workdir {workdir}"

#: (class ids (B,), probabilities (B, K)) of one checked batch.
BatchFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def export_classifier(model_or_classifier: keras.Model, base_dir: str | os.PathLike, model_name: str,
                      version: int | None = None) -> str:
    """Writes a classifier as a TF Serving SavedModel version, atomically.

    Args:
        model_or_classifier: A model of this package (CausalNL or a baseline),
            whose `.classifier` is exported, or a classifier returning logits.
            Its input shape must be fixed: (H, W, C) images or (D,) vectors.
        base_dir: Folder of TF Serving models (the parent of each model's base path).
        model_name: The model's folder in `base_dir`, e.g. "causalnl".
        version: Integer version; None takes one more than the largest
            existing version, or 1.

    Returns:
        The version directory written, `<base_dir>/<model_name>/<version>`.

    Raises:
        FileExistsError: `version` already exists.
        ValueError: A bad name or version, or a classifier of unsupported shape.
    """
    classifier = _classifier(model_or_classifier)
    input_shape = tuple(classifier.input_shape[1:])
    _check_name(model_name)
    if version is not None and (isinstance(version, bool) or not isinstance(version, numbers.Integral)
                                or version < 0):
        raise ValueError(f"version must be a non-negative integer, got {version!r}.")
    version = None if version is None else int(version)
    model_dir = os.path.join(os.fspath(base_dir), model_name)
    if version is not None and os.path.exists(os.path.join(model_dir, str(version))):
        raise FileExistsError(_exists_message(model_dir, version))
    os.makedirs(model_dir, exist_ok=True)

    # Not an integer, so TF Serving never loads it; os.mkdir (unlike mkdtemp)
    # honours the umask, so a server running as another user can read the result.
    temporary = os.path.join(model_dir, f".export-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    os.mkdir(temporary)
    try:
        archive = keras.export.ExportArchive()
        archive.track(classifier)
        for name, spec in _signatures(input_shape).items():
            archive.add_endpoint(name, _serving_fn(classifier, input_shape), input_signature=[spec])
        archive.write_out(temporary, verbose=False)
        return _publish(temporary, model_dir, version)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def export_run(workdir: str | os.PathLike, base_dir: str | os.PathLike, model_name: str | None = None,
               version: int | None = None) -> str:
    """Exports the classifier of a finished training run (its model.keras).

    Args:
        workdir: The run's work directory (`scripts/train.py --workdir`).
        base_dir: Folder of TF Serving models.
        model_name: None takes the run's `model.method` from config.json
            (e.g. "causalnl"), or the model's class name in lower case.
        version: As in `export_classifier`.

    Returns:
        The version directory written.
    """
    model = load_run_model(workdir)
    if model_name is None:
        model_name = _run_method(workdir) or type(model).__name__.lower()
    return export_classifier(model, base_dir, model_name, version)


def load_run_model(workdir: str | os.PathLike) -> keras.Model:
    """The final model of a run, from `<workdir>/model.keras`, with a clear error when missing."""
    workdir = os.fspath(workdir)
    path = os.path.join(workdir, MODEL_FILE)
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"No work directory {workdir}: train one with `{_TRAIN.format(workdir=workdir)}`.")
    if not os.path.isfile(path):
        unfinished = os.path.exists(os.path.join(workdir, "checkpoint.keras"))
        why = ("the run has not finished (training writes model.keras after its last epoch): rerun "
               "the same scripts/train.py command to resume it" if unfinished
               else f"train a model there first with `{_TRAIN.format(workdir=workdir)}`")
        raise FileNotFoundError(f"{path} not found: {why}.")
    return keras.saving.load_model(path, compile=False)


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
        return _keras_predictor(load_run_model(path), os.path.join(path, MODEL_FILE))
    return _saved_model_predictor(latest_version_dir(path))


def latest_version_dir(path: str | os.PathLike) -> str:
    """`path` if it holds a SavedModel, else its highest integer-named version that does."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such run directory or SavedModel.")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [int(v) for v in _integer_entries(path)
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


def _classifier(model: keras.Model) -> keras.Model:
    classifier = getattr(model, "classifier", model)
    if not isinstance(classifier, keras.Model):
        raise ValueError(f"Expected a Keras model or a model with a .classifier, got {type(model).__name__}.")
    try:
        input_shape = classifier.input_shape
    except (AttributeError, ValueError) as err:
        raise ValueError("The classifier has no known input shape: export a functional or Sequential "
                         "classifier built on keras.Input.") from err
    if not isinstance(input_shape, tuple) or len(input_shape) not in (2, 4) or None in input_shape[1:]:
        raise ValueError(f"Can only export classifiers of one fixed-size input (N, H, W, C) or (N, D); "
                         f"this one takes {input_shape}.")
    return classifier


def _signatures(input_shape: tuple[int, ...]) -> dict[str, tf.TensorSpec]:
    if len(input_shape) == 1:
        return {DEFAULT_SIGNATURE: tf.TensorSpec((None, *input_shape), tf.float32, name="features")}
    return {DEFAULT_SIGNATURE: tf.TensorSpec((None, *input_shape), tf.uint8, name="images"),
            FLOAT_SIGNATURE: tf.TensorSpec((None, *input_shape), tf.float32, name="images")}


def _serving_fn(classifier: keras.Model, input_shape: tuple[int, ...]):
    def serve(inputs):
        # Signatures do not check the shape of what TF Serving feeds them.
        inputs = tf.ensure_shape(inputs, (None, *input_shape))
        logits = tf.cast(classifier(to_float(inputs), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        return {"probabilities": probabilities,
                "class_ids": tf.argmax(probabilities, axis=-1, output_type=tf.int64)}
    return serve


def _publish(temporary: str, model_dir: str, version: int | None) -> str:
    """Renames the finished export to its version directory; with an automatic
    version, takes the next free one if another export got there first."""
    while True:
        number = version if version is not None else max(map(int, _integer_entries(model_dir)), default=0) + 1
        final = os.path.join(model_dir, str(number))
        if os.path.exists(final):  # rename(2) would replace an empty directory
            if version is not None:
                raise FileExistsError(_exists_message(model_dir, version))
            continue
        try:
            os.rename(temporary, final)
            return final
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another export renamed its own into `final` just now: look again.


def _integer_entries(path: str) -> list[str]:
    return [n for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []


def _exists_message(model_dir: str, version: int) -> str:
    return (f"{os.path.join(model_dir, str(version))} already exists: exports never overwrite a "
            "version; choose another --version, or omit it to take the next one.")


def _check_name(model_name: str) -> None:
    if not model_name or model_name in (".", "..") or "/" in model_name or os.sep in model_name:
        raise ValueError(f"model_name must be a plain folder name such as 'causalnl', got {model_name!r}.")


def _run_method(workdir: str | os.PathLike) -> str | None:
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            return json.load(f).get("model", {}).get("method")
    except (OSError, ValueError, AttributeError):
        return None


def _keras_predictor(model: keras.Model, source: str) -> Predictor:
    """The serving functions of an export, run on the loaded model itself."""
    classifier = _classifier(model)
    input_shape = tuple(classifier.input_shape[1:])
    serve = _serving_fn(classifier, input_shape)
    functions = {spec.dtype.as_numpy_dtype: tf.function(serve, input_signature=[spec])
                 for spec in _signatures(input_shape).values()}

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
