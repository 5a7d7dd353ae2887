"""tf_causalnl: CausalNL (Yao et al., NeurIPS 2021) as a Keras 3 model."""
