"""The rules for input and arguments, shared by the config path and by `fit()`.

One implementation of each rule, so that `scripts/train.py` (through
`tf_causalnl.training.checks`) and a user's own `model.fit(x, y)` refuse the same
input with the same one-line message: what is wrong, how much of it (the
count and the first offending example) and how to fix it.

  - Numbers (`check_whole`, `check_number`): the models' constructor
    arguments and the config's keys (`model.beta0` and `beta0` give one
    message, each under its own name).
  - Arrays (`check_inputs`, `check_labels`, `check_arrays`): NumPy arrays
    or tensors, checked whole before any work.
  - `tf.data` (`check_dataset_spec`, `checked_dataset`): the element spec
    before any work, then each batch's values inside the pipeline, where
    the checks cost a few reductions per batch on the input threads; a
    failing batch raises `tf.errors.InvalidArgumentError`, which
    `input_error` turns back into the one-line message.

Images are uint8 (0-255) or floats in [0, 1]; vectors (N, D) any finite floats.
Labels are class ids in [0, num_classes), or {"noisy", "clean"[, "index"]}.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

#: A label dict's class labels: the training targets and the clean labels that feed diagnostics only.
LABEL_KEYS = ("noisy", "clean")
#: A label dict's optional key for each example's position in the training set (DivideMix's split).
INDEX_KEY = "index"

_MARK = "tf_causalnl input check<<"
_END = ">>"
_PIXEL_FIX = "pass uint8 images (0-255), or floats scaled to [0, 1] (x / 255)"


# Numbers ----------------------------------------------------------------------------

def is_number(value: Any) -> bool:
    """A real number that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_whole(value: Any, minimum: int) -> bool:
    """An integer (not a bool) of at least `minimum`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def check_whole(value: Any, name: str, minimum: int, *, optional: bool = False, hint: str = "") -> None:
    """Refuses anything but a whole number of at least `minimum` (or None when `optional`).

    Args:
      value: the value given.
      name: what the message calls it: "z_dim", or "model.z_dim" for a config.
      minimum: the smallest value accepted.
      optional: whether None is accepted.
      hint: how to set it, appended to the message.
    """
    if optional and value is None:
        return
    if not is_whole(value, minimum):
        raise ValueError(f"{name} must be a whole number of at least {minimum}{' or None' if optional else ''}, "
                         f"got {value!r}{'; ' + hint if hint else '.'}")


def check_number(value: Any, name: str, *, above: float | None = None, at_least: float | None = None,
                 at_most: float | None = None, optional: bool = False, hint: str = "") -> float | None:
    """Refuses anything but a finite number in the range given; returns it as a float.

    Exactly one of `above` (exclusive) and `at_least` (inclusive) may bound
    it from below; `at_most` from above (inclusive).
    """
    if optional and value is None:
        return None
    ok = is_number(value) and math.isfinite(value)
    ok = ok and (above is None or value > above) and (at_least is None or value >= at_least)
    ok = ok and (at_most is None or value <= at_most)
    if not ok:
        if at_least is not None and at_most is not None:
            bounds = f"in [{at_least:g}, {at_most:g}]"
        elif above is not None:
            bounds = f"above {above:g}"
        elif at_least is not None:
            bounds = f"of at least {at_least:g}"
        else:
            bounds = f"of at most {at_most:g}"
        raise ValueError(f"{name} must be a finite number {bounds}{' or None' if optional else ''}, "
                         f"got {value!r}{'; ' + hint if hint else '.'}")
    return float(value)


# Arrays -----------------------------------------------------------------------------

def is_array_like(x: Any) -> bool:
    """Whether `fit` reads `x` as arrays: NumPy arrays, tensors, lists, or anything with __array__."""
    return isinstance(x, (np.ndarray, tf.Tensor, list)) or hasattr(x, "__array__")


def check_inputs(x: Any, what: str = "x") -> np.ndarray:
    """Refuses inputs no model here can train on; returns them as an array.

    Vectors (N, D) and images (N, H, W) or (N, H, W, C); images uint8 or
    floats in [0, 1]; floats finite. Nothing is copied or converted.
    """
    x = np.asarray(x)
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"{what} has rank {x.ndim} (shape {x.shape}); expected (N, D) vectors, "
                         "(N, H, W) or (N, H, W, C) images.")
    if len(x) == 0:
        raise ValueError(f"{what} has no examples (shape {x.shape}); give at least one batch of examples.")
    if np.issubdtype(x.dtype, np.floating):
        axes = tuple(range(1, x.ndim))
        _refuse_rows(~np.isfinite(x).all(axis=axes), what, "NaN or infinite values",
                     "drop those examples or replace the values (np.nan_to_num)")
        if x.ndim > 2:
            outside = (x.min(axis=axes) < 0.0) | (x.max(axis=axes) > 1.0)
            _refuse_rows(outside, what, f"pixels outside [0, 1] (they span [{x.min():g}, {x.max():g}])",
                         _PIXEL_FIX)
    elif x.ndim > 2 and x.dtype != np.uint8:
        raise ValueError(f"{what} images have dtype {x.dtype}; {_PIXEL_FIX}.")
    elif not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise ValueError(f"{what} has dtype {x.dtype}; give numbers: float vectors, or {_PIXEL_FIX}.")
    return x


def check_labels(y: Any, what: str, num_examples: int, num_classes: int | None) -> np.ndarray:
    """Refuses labels that are not one integer class id in [0, num_classes) per example.

    Integer-valued floats (3.0) are accepted; the labels come back as int64.

    Args:
      y: the labels given.
      what: what the message calls them, e.g. "y" or 'y["clean"]'.
      num_examples: how many examples they label.
      num_classes: the classes; None checks only that they are not negative.
    """
    y = np.asarray(y)
    classes = f"0..{num_classes - 1}" if num_classes else "0, 1, ..."
    if y.ndim == 2 and y.shape[1] > 1:
        raise ValueError(f"{what} has shape {y.shape}, one row per example; give one integer class id per "
                         f"example ({classes}), e.g. np.argmax({what}, axis=1) for one-hot rows.")
    if y.ndim != 1:
        raise ValueError(f"{what} has shape {y.shape}; give a 1-D array of integer class ids ({classes}), "
                         f"one per example (reshape(-1) for (N, 1) labels).")
    if len(y) != num_examples:
        raise ValueError(f"{what} has {len(y):,} labels for {num_examples:,} examples; give one label per example.")
    if np.issubdtype(y.dtype, np.floating):
        _refuse_rows(~np.isfinite(y) | (y != np.round(y)), what, "labels that are not whole numbers",
                     f"give integer class ids ({classes}), not probabilities or scores", values=y)
    elif not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} has dtype {y.dtype}; give integer class ids ({classes}).")
    if num_classes is None:
        _refuse_rows(y < 0, what, "negative labels", "map the labels to 0, 1, ...", values=y)
    else:
        _refuse_rows((y < 0) | (y >= num_classes), what, f"labels outside [0, {num_classes})",
                     f"map the labels to {classes}, or use as many classes as the labels need", values=y)
    return y.astype(np.int64)


def check_arrays(x: Any, y: Any, *, num_classes: int, input_shape: Sequence[int | None],
                 what: str = "x", labels_what: str = "y") -> None:
    """The checks of `fit(x, y)` on arrays: inputs, their shape, and labels or a label dict."""
    if y is None:
        raise ValueError(f"Training needs labels: call fit({what}, noisy_labels), or fit on a dataset of (x, y) "
                         "batches.")
    x = check_inputs(x, what)
    check_input_shape(x.shape[1:], input_shape, what)
    for key, labels in label_parts(y, labels_what):
        check_labels(labels, key, len(x), num_classes)


def label_parts(y: Any, what: str = "y") -> list[tuple[str, Any]]:
    """[(name, labels)] of integer labels or of a {"noisy", "clean"} dict, whose keys are checked."""
    if not isinstance(y, dict):
        return [(what, y)]
    unknown = sorted(set(y) - set(LABEL_KEYS) - {INDEX_KEY})
    if unknown or "noisy" not in y:
        raise ValueError(f"{what} is a dict with keys {sorted(y)}; a label dict holds 'noisy' (the training "
                         "labels) and optionally 'clean' (known true labels, for diagnostics only) and "
                         f"'{INDEX_KEY}' (each example's position in the training set).")
    return [(f'{what}["{key}"]', y[key]) for key in LABEL_KEYS if key in y]


def check_input_shape(shape: Sequence[int | None], expected: Sequence[int | None], what: str = "x") -> None:
    """Refuses examples of another shape than the classifier takes (None in `expected` takes any size)."""
    shape, expected = tuple(shape), tuple(expected)
    if len(shape) == len(expected) and all(e is None or s is None or s == e for s, e in zip(shape, expected)):
        return
    fix = "give inputs of that shape"
    if shape + (1,) == expected:
        fix = f"add the channel axis ({what}[..., None])"
    raise ValueError(f"{what} has examples of shape {shape}, but the classifier takes {expected}; {fix}.")


def _refuse_rows(bad: np.ndarray, what: str, problem: str, fix: str, values: np.ndarray | None = None) -> None:
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    value = "" if values is None else f", {values[rows[0]].item()!r}"
    raise ValueError(f"{what} has {problem} in {len(rows):,} of its {len(bad):,} examples (the first is "
                     f"example {rows[0]}{value}); {fix}.")


# tf.data ----------------------------------------------------------------------------

def check_dataset_spec(dataset: tf.data.Dataset, *, input_shape: Sequence[int | None], what: str = "x") -> None:
    """Refuses a `tf.data.Dataset` whose batches no model here can train on, from its spec alone.

    Batches must be (x, y) with y integer labels (B,) or a {"noisy", "clean"}
    dict of them; x of the classifier's input shape, uint8 or float (or
    integer vectors); no sample weights; and the dataset not empty.
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) < 2:
        raise ValueError(f"{what} yields {spec}; fit needs batches of (x, y): map the dataset to "
                         "(images, labels) pairs.")
    if len(spec) > 2:
        raise ValueError(f"{what} yields {len(spec)}-tuples; the label-noise models take (x, y) batches, "
                         "without sample weights: the methods set their own per-example weights.")
    x_spec, y_spec = spec
    if not isinstance(x_spec, tf.TensorSpec):
        raise ValueError(f"{what} yields inputs of {x_spec}; give one tensor of inputs per batch.")
    shape = x_spec.shape
    if shape.rank == len(input_shape) and shape.is_compatible_with(tuple(input_shape)):
        raise ValueError(f"{what} yields single examples of shape {tuple(shape)}; batch it "
                         "(dataset.batch(128)) so that each element is a batch of (x, y).")
    if shape.rank is None or shape.rank < 2:
        raise ValueError(f"{what} yields inputs of shape {shape}; batch the dataset (dataset.batch(128)) and "
                         "give vectors (B, D) or images (B, H, W, C).")
    check_input_shape(tuple(shape[1:]), input_shape, f"{what}'s batch")
    dtype = x_spec.dtype
    if shape.rank > 2 and not (dtype == tf.uint8 or dtype.is_floating):
        raise ValueError(f"{what} yields images of dtype {dtype.name}; {_PIXEL_FIX}.")
    if not (dtype.is_floating or dtype.is_integer):
        raise ValueError(f"{what} yields inputs of dtype {dtype.name}; give numbers.")
    for key, labels in _dataset_label_parts(y_spec, what):
        if not isinstance(labels, tf.TensorSpec) or labels.shape.rank != 1:
            raise ValueError(f"{key} yields labels of {labels}; give one integer class id per example, a "
                             "tensor of shape (B,) in each batch.")
        if not (labels.dtype.is_integer or labels.dtype.is_floating):
            raise ValueError(f"{key} yields labels of dtype {labels.dtype.name}; give integer class ids.")
    if int(dataset.cardinality()) == 0:
        raise ValueError(f"{what} has no batches; give a dataset with at least one batch (a batch size larger "
                         "than the dataset with drop_remainder=True gives none).")


def checked_dataset(dataset: tf.data.Dataset, *, num_classes: int, input_shape: Sequence[int | None],
                    what: str = "x") -> tf.data.Dataset:
    """`dataset` after `check_dataset_spec`, each batch's values checked as it is made.

    The checks are those of `check_inputs` and `check_labels`: finite
    inputs, image pixels in [0, 1] for floats, labels whole and in
    [0, num_classes). A failing batch raises `tf.errors.InvalidArgumentError`
    naming the batch and its first offending example; `input_error` gives
    the message back.
    """
    check_dataset_spec(dataset, input_shape=input_shape, what=what)

    def check(index, batch):
        x, y = batch
        parts = _dataset_label_parts(y, what)
        rules = _input_rules(x, what) + [rule for key, labels in parts for rule in _label_rules(labels, key, num_classes)]
        if not rules:
            return x, y
        passed = tf.reduce_all(tf.stack([rule.passed() for rule in rules]))

        def report():  # Only for a failing batch: the per-example reductions and the message.
            asserts = []
            for rule in rules:
                with tf.control_dependencies(asserts):
                    asserts = [_assert(rule, index)]
            with tf.control_dependencies(asserts):
                return tf.identity(x), tf.nest.map_structure(tf.identity, y)

        return tf.cond(passed, lambda: (x, y), report)

    return dataset.enumerate().map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def input_error(error: tf.errors.InvalidArgumentError) -> str | None:
    """The one-line message of a check of `checked_dataset` that failed, or None for any other error."""
    found = re.search(re.escape(_MARK) + "(.*?)" + re.escape(_END), error.message, re.DOTALL)
    return found.group(1) if found else None


def _dataset_label_parts(y, what: str) -> list:
    """[(name, labels)] of a dataset's labels: "x" for plain labels, "x's clean" for a dict's.

    The names carry no quotes: TensorFlow escapes them in its errors.
    """
    if not isinstance(y, dict):
        return [(what, y)]
    label_parts(y, f"the labels of {what}")
    return [(f"{what} (its {key} labels)", y[key]) for key in LABEL_KEYS if key in y]


class _Rule(NamedTuple):
    """One check of a batch: `passed()` for the whole batch, cheap; `bad()` per example, for the message."""

    passed: Callable[[], tf.Tensor]
    bad: Callable[[], tf.Tensor]
    what: str
    problem: str
    fix: str
    values: tf.Tensor | None = None


def _assert(rule: _Rule, index: tf.Tensor) -> tf.Operation:
    """An Assert of `rule`, whose message names the batch, the count of bad examples and the first."""
    bad = rule.bad()
    first = tf.argmax(tf.cast(bad, tf.int32))
    found = ", {}" if rule.values is not None else ""
    template = (f"{_MARK}{rule.what} has {rule.problem} in {{}} of the {{}} examples of batch {{}} (the first is "
                f"its example {{}}{found}); {rule.fix}.{_END}")
    inputs = [tf.reduce_sum(tf.cast(bad, tf.int32)), tf.size(bad), index, first]
    message = tf.strings.format(template, inputs + ([rule.values[first]] if rule.values is not None else []))
    return tf.debugging.Assert(~tf.reduce_any(bad), [message])


def _input_rules(x: tf.Tensor, what: str) -> list:
    if not x.dtype.is_floating:
        return []
    axes = list(range(1, x.shape.rank))
    rules = [_Rule(lambda: tf.reduce_all(tf.math.is_finite(x)),
                   lambda: ~tf.reduce_all(tf.math.is_finite(x), axis=axes), what, "NaN or infinite values",
                   "drop those examples or replace the values (tf.where(tf.math.is_finite(x), x, 0))")]
    if x.shape.rank > 2:
        rules.append(_Rule(lambda: (tf.reduce_min(x) >= 0.0) & (tf.reduce_max(x) <= 1.0),
                           lambda: (tf.reduce_min(x, axis=axes) < 0.0) | (tf.reduce_max(x, axis=axes) > 1.0),
                           what, "pixels outside [0, 1]", _PIXEL_FIX))
    return rules


def _label_rules(labels: tf.Tensor, what: str, num_classes: int) -> list:
    classes = f"0..{num_classes - 1}"
    rules = []
    if labels.dtype.is_floating:
        fractional = lambda: ~tf.math.is_finite(labels) | tf.not_equal(labels, tf.round(labels))  # noqa: E731
        rules.append(_Rule(lambda: ~tf.reduce_any(fractional()), fractional, what, "labels that are not whole numbers",
                           f"give integer class ids ({classes}), not probabilities or scores", labels))
    outside = lambda: (labels < 0) | (labels >= tf.cast(num_classes, labels.dtype))  # noqa: E731
    rules.append(_Rule(lambda: ~tf.reduce_any(outside()), outside, what, f"labels outside [0, {num_classes})",
                       f"map the labels to {classes}, or use as many classes as the labels need", labels))
    return rules
