"""TensorFlow's environment for the scripts, set before TensorFlow is imported.

Each script imports this module first (`import tf_env`): TensorFlow leaves its
oneDNN CPU kernels off on some CPUs unless asked before it is imported, and
with them a training step here is several times faster. Its log level 2
keeps the console to warnings and errors. A value already in the
environment wins.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
