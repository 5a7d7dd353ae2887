"""The model side of co-teaching's forget rate, for CausalNL, CoTeaching and MentorNet.

A module of its own so that the models' shared base (`wrapper`) and the
callbacks stay below `transition`, whose "auto" estimate trains a CE model.
"""

import keras

from tf_causalnl import losses, validation
from tf_causalnl.callbacks import with_forget_rate_schedule


class ForgetRateMixin:
    """The model side of the schedule, for `keras.Model`s with a forget rate.

    CausalNL, CoTeaching and MentorNet call `_init_forget_rate` in
    `__init__` (forget rate, ramp and small-loss `selection` rule,
    `losses.SELECTIONS`); their `fit` (`ClassifierWrapper.fit`), once it has checked
    its input, then replaces a forget rate of "auto" by the noise
    rate estimated from fit's data (`transition.resolve_auto_forget_rate`)
    and adds `ForgetRateSchedule` first unless one is given, so loggers such
    as `CSVLogger` see the `forget_rate` it adds to the epoch's logs.
    """

    def _init_forget_rate(self, forget_rate, ramp_epochs: int, selection: str) -> None:
        # noqa below: transition imports the baselines, which import this module.
        from tf_causalnl import transition  # noqa: PLC0415

        self.forget_rate = transition.check_forget_rate(forget_rate)
        validation.check_whole(ramp_epochs, "ramp_epochs", 0)
        self.ramp_epochs = int(ramp_epochs)
        self.selection = losses.check_selection(selection)
        # Read by the loss, set each epoch by ForgetRateSchedule.
        self.forget_rate_variable = keras.Variable(
            0.0, trainable=False, dtype="float32", name="current_forget_rate"
        )

    def _forget_rate_config(self) -> dict:
        """The constructor arguments this mixin adds, for the models' `get_config`."""
        return {"forget_rate": self.forget_rate, "ramp_epochs": self.ramp_epochs, "selection": self.selection}

    def _fit_callbacks(self, x, y, callbacks: list) -> list:
        """Run by `fit` after its input is checked: "auto" resolved, the schedule added."""
        from tf_causalnl import transition  # noqa: PLC0415
        transition.resolve_auto_forget_rate(self, x, y)
        return with_forget_rate_schedule(super()._fit_callbacks(x, y, callbacks))
