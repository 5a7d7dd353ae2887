"""tf_causalnl: CausalNL (Yao et al., NeurIPS 2021) as a Keras 3 model.

    from tf_causalnl import CausalNL, networks
    model = CausalNL(networks.build_small_cnn((28, 28, 1), 10), forget_rate=0.45)
    model.compile(optimizer="adam")
    model.fit(x_train, noisy_labels, epochs=10, validation_data=(x_test, y_test))

Modules: `data` (datasets and tf.data pipelines), `clothing1m` (Clothing1M
from its image files), `noise` (label-noise synthesis), `networks` (the
sub-networks), `losses` and `distributions` (the objective), `causalnl` (the
model), `baselines` (the eight methods of the paper's Section 4.1),
`transition` (noise estimates from noisy labels alone), `label_issues`
(which labels are wrong), `wrapper` (what every
model shares), `callbacks`, `training` (configs to runs), `grid` (the
benchmark table).
"""

from tf_causalnl.causalnl import CausalNL

__version__ = "0.1.0"
__all__ = ["CausalNL"]
