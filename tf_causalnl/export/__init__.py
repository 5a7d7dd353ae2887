"""Export: a trained classifier as a SavedModel for TF Serving (`serving`), and predictions to CSV (`predict`).

The names below are the package's API: `from tf_causalnl import export;
export.export_run(workdir, "exported", "fmnist")`.
"""

from tf_causalnl.checkpoints import load_run_model
from tf_causalnl.export.predict import (Predictor, load_predictor, predict_images, predict_to_csv,
                                        read_image_folder, read_inputs, write_predictions_csv)
from tf_causalnl.export.serving import export_classifier, export_run
