"""Co-teaching's forget rate on the model side, for CausalNL, CoTeaching and MentorNet; "auto" too.

`ForgetRateMixin` holds the rate, its ramp and the small-loss rule, and adds
the schedule to `fit`; a forget rate of "auto" is replaced, once `fit` has
checked its input, by the noise rate estimated from that input (`estimate`).
"""

import math

import keras
import numpy as np

from tf_causalnl import validation
from tf_causalnl.models.callbacks import with_forget_rate_schedule
from tf_causalnl.models.estimate import estimate_noise
from tf_causalnl.models.selection import DEFAULT_SELECTION, check_selection


#: The forget rate that asks for the estimated noise rate.
AUTO = "auto"


def check_forget_rate(forget_rate, name: str = "forget_rate") -> float | str:
    """A forget rate as models store it: a float in [0, 1), or "auto".

    Args:
      forget_rate: the value given.
      name: what the error calls it, e.g. "model.forget_rate" for a config.

    Raises:
      ValueError: neither "auto" nor a number in [0, 1).
    """
    if forget_rate == AUTO:
        return AUTO
    try:
        value = float(forget_rate)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f'{name} must be a number in [0, 1) or "auto", got {forget_rate!r}; give the expected '
            'noise rate as a fraction (0.45, not 45), or "auto" to estimate it from the noisy labels.')
    return value


def resolve_auto_forget_rate(model: keras.Model, x, y=None, **estimate_kwargs) -> None:
    """Replaces a model's forget_rate "auto" by the noise rate estimated from fit's data.

    Called by the `fit` of models with a forget rate (CausalNL, CoTeaching)
    before training: `estimate_noise` runs on a fresh copy of `model.classifier`
    with the (x, y) given to `fit` (arrays, or a dataset of (x, y) batches read
    once; {"noisy", "clean"} labels use "noisy"). The estimate is kept as
    `model.noise_estimate`. Does nothing when the forget rate is a number.
    """
    if model.forget_rate != AUTO:
        return
    if x is None:
        raise ValueError('forget_rate="auto" estimates the noise from the data given to fit(); pass x.')
    if y is None:  # a dataset, or another iterable of batches
        xs, ys = [], []
        for batch in x:
            xb, yb, _ = keras.utils.unpack_x_y_sample_weight(batch)
            if yb is None:
                raise ValueError('forget_rate="auto" needs labels: batches of (x, y).')
            xs.append(keras.ops.convert_to_numpy(xb))
            ys.append(keras.ops.convert_to_numpy(yb["noisy"] if isinstance(yb, dict) else yb))
        x, y = np.concatenate(xs), np.concatenate(ys)
    elif isinstance(y, dict):
        y = y["noisy"]
    model.noise_estimate = estimate_noise(model.classifier, np.asarray(x), np.asarray(y), **estimate_kwargs)
    model.forget_rate = float(model.noise_estimate.noise_rate)


class ForgetRateMixin:
    """The model side of the schedule, for `keras.Model`s with a forget rate.

    CausalNL, CoTeaching and MentorNet take the forget rate, its ramp and the
    small-loss `selection` rule through this class's `__init__` (
    `selection.SELECTIONS`); their `fit` (`ClassifierWrapper.fit`), once it has checked
    its input, then replaces a forget rate of "auto" by the noise
    rate estimated from fit's data (`resolve_auto_forget_rate`)
    and adds `ForgetRateSchedule` first unless one is given, so loggers such
    as `CSVLogger` see the `forget_rate` it adds to the epoch's logs.
    """

    def __init__(self, classifier: keras.Model, *, forget_rate: float | str = 0.2, ramp_epochs: int = 10,
                 selection: str = DEFAULT_SELECTION, seed: int = 0, **kwargs):
        super().__init__(classifier, seed=seed, **kwargs)
        self._init_forget_rate(forget_rate, ramp_epochs, selection)

    def _init_forget_rate(self, forget_rate, ramp_epochs: int, selection: str) -> None:
        self.forget_rate = check_forget_rate(forget_rate)
        validation.check_whole(ramp_epochs, "ramp_epochs", 0)
        self.ramp_epochs = int(ramp_epochs)
        self.selection = check_selection(selection)
        # Read by the loss, set each epoch by ForgetRateSchedule.
        self.forget_rate_variable = keras.Variable(
            0.0, trainable=False, dtype="float32", name="current_forget_rate"
        )

    def _forget_rate_config(self) -> dict:
        """The constructor arguments this mixin adds, for the models' `get_config`."""
        return {"forget_rate": self.forget_rate, "ramp_epochs": self.ramp_epochs, "selection": self.selection}

    def _fit_callbacks(self, x, y, callbacks: list, verbose="auto") -> list:
        """Run by `fit` after its input is checked: "auto" resolved (saying so unless
        fit is silent), the schedule added."""
        say = self.forget_rate == AUTO and verbose != 0
        if say:
            print("Estimating the noise rate of the labels (forget_rate=\"auto\"): a copy of the classifier "
                  "trained with cross-entropy first.", flush=True)
        resolve_auto_forget_rate(self, x, y)
        if say:
            print(f"Estimated noise rate {self.forget_rate:.3f}: the forget rate.", flush=True)
        return with_forget_rate_schedule(super()._fit_callbacks(x, y, callbacks, verbose))
