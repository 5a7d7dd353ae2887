"""Label noise: checks and reports (`labels`), synthesis by name (`synthesis`, `idn`), estimates (`estimation`).

NumPy only. `from tf_causalnl import noise; noise.make_noisy_labels("idn", ...)`;
the estimates from a trained classifier are `tf_causalnl.transition`'s.
"""

from tf_causalnl.noise.idn import flip_rate_location, idn_transition_rows, instance_dependent_noise
from tf_causalnl.noise.labels import (ROW_SUM_TOLERANCE, NoiseReport, check_labels, check_rate, check_std,
                                      check_transition, noise_report, transition_matrix)
from tf_causalnl.noise.synthesis import (NOISE_TYPES, make_noisy_labels, pair_flip_noise, symmetric_noise,
                                         true_transition_rows)
