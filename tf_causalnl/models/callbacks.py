"""Callbacks: co-teaching's forget-rate schedule and a divergence guard.

The model side of the schedule is `tf_causalnl.models.forget_rate.ForgetRateMixin`.
"""

import math

import keras


def forget_rate_at(epoch: int, final_rate: float, ramp_epochs: int) -> float:
    """Co-teaching's schedule (Han et al. 2018): 0 at epoch 0, rising linearly to
    `final_rate` at epoch `ramp_epochs - 1`, constant after. `ramp_epochs` <= 1
    uses `final_rate` from the first epoch."""
    if ramp_epochs <= 1:
        return float(final_rate)
    return float(final_rate) * min(1.0, epoch / (ramp_epochs - 1))


class ForgetRateSchedule(keras.callbacks.Callback):
    """Sets a co-teaching model's forget rate at the start of every epoch.

    The model provides `forget_rate` (the final rate), `ramp_epochs` and the
    variable `forget_rate_variable` that its `train_step` reads. `CausalNL.fit`
    adds this callback when the caller did not, and the rate in force is logged
    as `forget_rate`. The epoch index is Keras' own, so a run resumed with
    `initial_epoch` or `BackupAndRestore` continues the schedule where it was.
    """

    def on_epoch_begin(self, epoch, logs=None):
        rate = forget_rate_at(epoch, self.model.forget_rate, self.model.ramp_epochs)
        self.model.forget_rate_variable.assign(rate)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["forget_rate"] = float(self.model.forget_rate_variable.numpy())


def with_forget_rate_schedule(callbacks) -> list:
    """`callbacks` as a list, with a `ForgetRateSchedule` first unless one is there.

    Models with a forget rate call this in `fit`; first, so that loggers such
    as `CSVLogger` see the `forget_rate` it adds to the epoch's logs.
    """
    callbacks = list(callbacks or [])
    if not any(isinstance(c, ForgetRateSchedule) for c in callbacks):
        callbacks.insert(0, ForgetRateSchedule())
    return callbacks


class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose logs hold a NaN or an infinity.

    Like `keras.callbacks.TerminateOnNaN`, and it says which loss terms went
    non-finite first: the models log each term of their objective (CausalNL:
    reconstruction, noisy_label_ce, negative_entropy, kl_z, coteaching) as a
    running mean over the epoch, so at the first bad batch the terms that
    are already non-finite are the culprits, while the rest are still finite.
    After `fit`, `problem` holds the message (None if training stayed finite).
    """

    def __init__(self):
        super().__init__()
        self.problem = None

    def on_train_begin(self, logs=None):
        self.problem = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        values = {name: float(value) for name, value in (logs or {}).items()}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if not bad:
            return
        terms = [name for name in bad if name != "loss"] or bad
        self.problem = (
            f"Training diverged at epoch {self._epoch + 1}, batch {batch + 1}: "
            + ", ".join(f"{name} = {values[name]}" for name in terms)
            + " went non-finite first. Lower train.learning_rate (or the beta of that term), "
            "and check the inputs for extreme values; the backup keeps the last finite epoch.")
        self.model.stop_training = True
