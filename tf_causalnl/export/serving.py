"""A trained classifier as a SavedModel for TF Serving, versioned and published atomically."""

from __future__ import annotations

import errno
import json
import numbers
import os
import shutil
import uuid

import keras
import tensorflow as tf

from tf_causalnl import checkpoints
from tf_causalnl.data import to_float


DEFAULT_SIGNATURE = "serving_default"
FLOAT_SIGNATURE = "serving_float"


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
    classifier = exported_classifier(model_or_classifier)
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
        for name, spec in serving_signatures(input_shape).items():
            archive.add_endpoint(name, serving_function(classifier, input_shape), input_signature=[spec])
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
    model = checkpoints.load_run_model(workdir, compile=False)
    if model_name is None:
        model_name = _run_method(workdir) or type(model).__name__.lower()
    return export_classifier(model, base_dir, model_name, version)


def exported_classifier(model: keras.Model) -> keras.Model:
    """The network that predicts for `model` (its inference classifier, or its classifier; a bare Keras model itself)."""
    if hasattr(model, "inference_classifier"):  # a model that predicts with more than one network
        classifier = model.inference_classifier()
    else:
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


def serving_signatures(input_shape: tuple[int, ...]) -> dict[str, tf.TensorSpec]:
    """The input specs of the exported signatures, by signature name."""
    if len(input_shape) == 1:
        return {DEFAULT_SIGNATURE: tf.TensorSpec((None, *input_shape), tf.float32, name="features")}
    return {DEFAULT_SIGNATURE: tf.TensorSpec((None, *input_shape), tf.uint8, name="images"),
            FLOAT_SIGNATURE: tf.TensorSpec((None, *input_shape), tf.float32, name="images")}


def serving_function(classifier: keras.Model, input_shape: tuple[int, ...]):
    """The function an export traces for TF Serving: inputs to class probabilities and class ids."""
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
        number = version if version is not None else max(map(int, integer_entries(model_dir)), default=0) + 1
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


def integer_entries(path: str) -> list[str]:
    """The names in `path` that are whole numbers (a model's version folders); [] without `path`."""
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
