"""Training from configs: one run of a config into a work directory, checked first, resumable.

`registry` (method names to models), `inputs` (data and noise of a run),
`estimate` (the cached noise estimate), `checks` and `config_checks` (bad
input refused before any work), `distribute` (strategies), `run` (`train`).
The names below are the package's API: `from tf_causalnl import training;
training.train(config, workdir)`.
"""

from tf_causalnl.training.estimate import estimate_noise, needs_estimate
from tf_causalnl.training.inputs import Inputs, file_inputs, load_noisy_data, prepare_inputs, true_transition_rows
from tf_causalnl.training.registry import FILE_DATASETS, METHODS, REAL_NOISE, STRATEGIES, build_model
from tf_causalnl.training.run import LAST_EPOCHS, PICTURE_TEST_EXAMPLES, summarize, train, write_pictures
