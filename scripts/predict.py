"""Writes class predictions for images to a CSV file.

    python scripts/predict.py --model runs/fmnist_idn45_cpu --inputs images.npy \
        --output predictions.csv [--batch_size 256]

--model is a run's work directory (its model.keras), a SavedModel version
directory, or <base_dir>/<model_name> (its highest version). --inputs is a
.npy file of uint8 images or float images in [0, 1], or a folder of PNG/JPEG
files. The CSV has columns input (row index or file name), class_id and
probability_0..probability_{K-1}.
"""

import os

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

from absl import app, flags  # noqa: E402
from tf_causalnl.export import predict


_MODEL = flags.DEFINE_string("model", None, "Run directory, SavedModel version directory or model folder.")
_INPUTS = flags.DEFINE_string("inputs", None, "A .npy file of images or a folder of PNG/JPEG images.")
_OUTPUT = flags.DEFINE_string("output", None, "CSV file to write.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per prediction batch.", lower_bound=1)
flags.mark_flags_as_required(["model", "inputs", "output"])


def main(argv):
    del argv
    rows = predict.predict_to_csv(_MODEL.value, _INPUTS.value, _OUTPUT.value, _BATCH_SIZE.value)
    print(f"wrote {rows} predictions to {os.path.abspath(_OUTPUT.value)}")


if __name__ == "__main__":
    app.run(main)
