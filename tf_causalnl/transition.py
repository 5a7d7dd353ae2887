"""The noise of a dataset estimated from its noisy labels alone: the public names, in one place.

The anchor-point estimate trains a CE classifier on the noisy labels
(`tf_causalnl.models.estimate`), then reads the transition matrix, the clean
prior and the noise rate from its probabilities (`tf_causalnl.noise.estimation`);
`forget_rate="auto"` uses that noise rate (`tf_causalnl.models.forget_rate`).

    from tf_causalnl import networks, transition
    estimate = transition.estimate_noise(networks.build_small_cnn((28, 28, 1), 10), x, noisy_labels)
"""

from tf_causalnl.models.estimate import estimate_noise
from tf_causalnl.models.forget_rate import AUTO, check_forget_rate, resolve_auto_forget_rate
from tf_causalnl.noise.estimation import (SINGULAR_RCOND, NoiseEstimate, anchor_transition_matrix,
                                          average_flip_rate, clean_class_prior, estimate_from_probabilities)
from tf_causalnl.noise.labels import ROW_SUM_TOLERANCE


__all__ = ["AUTO", "NoiseEstimate", "ROW_SUM_TOLERANCE", "SINGULAR_RCOND", "anchor_transition_matrix",
           "average_flip_rate", "check_forget_rate", "clean_class_prior", "estimate_from_probabilities",
           "estimate_noise", "resolve_auto_forget_rate"]
