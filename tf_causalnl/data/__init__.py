"""Data: datasets as arrays (`sources`), tf.data pipelines (`pipelines`), Clothing1M (`clothing1m`).

The lowest layer with `noise`: it imports nothing of the package but
`validation`. The names below are this package's API, as in
`from tf_causalnl import data; data.load_dataset("fashion_mnist")`.
"""

from tf_causalnl.data.pipelines import (epoch_batches, epoch_seeds, eval_dataset, steps_per_epoch, to_float,
                                        train_dataset)
from tf_causalnl.data.sources import (DEFAULT_FASHION_MNIST_DIR, FASHION_MNIST_FILES, LOADERS, Dataset,
                                      IDXFormatError, from_arrays, load_dataset, load_fashion_mnist, load_tfds,
                                      read_idx)
