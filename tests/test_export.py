"""Export for TF Serving (layout, atomicity, signatures, fresh-process reload) and predict."""

import csv
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_causalnl import CausalNL, baselines, networks
from tf_causalnl.export import predict, serving

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYTHON = sys.executable
#: TensorFlow installs its command-line tool beside the Python that runs the tests.
SAVED_MODEL_CLI = pathlib.Path(shutil.which("saved_model_cli", path=pathlib.Path(PYTHON).parent)
                               or shutil.which("saved_model_cli") or pathlib.Path(PYTHON).parent / "saved_model_cli")
SHAPE, CLASSES = (8, 8, 1), 3
#: The class `keras.export.ExportArchive()` makes for this backend (the one to patch).
ARCHIVE = type(keras.export.ExportArchive())


def _images(n, seed=0, shape=SHAPE):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _classifier():
    """An untrained small CNN whose probabilities vary clearly with the input."""
    classifier = networks.build_small_cnn(SHAPE, CLASSES)
    logits = classifier.get_layer("logits")
    logits.kernel.assign(logits.kernel * 100.0)  # spread the probabilities away from 1/3
    return classifier


@pytest.fixture(scope="module", autouse=True)
def _start_outside_early(request):
    """Starts the processes of `outside` before the first test when a selected
    test needs them, so that they run alongside the tests in this process."""
    if any("outside" in item.fixturenames
           for item in request.session.items if getattr(item, "module", None) is request.module):
        request.getfixturevalue("outside")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(model, run directory, exported version directory) shared by the tests below."""
    root = tmp_path_factory.mktemp("run")
    model = CausalNL(_classifier(), z_dim=2, vae_width=4, forget_rate=0.2)
    workdir = root / "run"
    workdir.mkdir()
    model.save(workdir / "model.keras")
    config = {"data": {"name": "tiny"}, "model": {"method": "causalnl"}}
    (workdir / "config.json").write_text(json.dumps(config))
    version_dir = serving.export_classifier(model, root / "exports", "causalnl")
    return model, workdir, pathlib.Path(version_dir)


def test_layout_version_numbering_and_refusing_an_existing_version(run, tmp_path):
    first = run[2]  # the first export into its base directory
    assert (first.parent.name, first.name) == ("causalnl", "1")
    model = baselines.NoisyLabelClassifier(_classifier())
    (tmp_path / "m" / "2").mkdir(parents=True)  # an earlier version
    (tmp_path / "m" / ".export-left-by-a-kill.tmp").mkdir()  # not a version
    paths = [serving.export_classifier(model, tmp_path, "m"),  # one more than the largest
             serving.export_classifier(model.classifier, tmp_path, "m", version=7)]
    assert paths == [str(tmp_path / "m" / "3"), str(tmp_path / "m" / "7")]
    umask = os.umask(0o022)
    os.umask(umask)
    for path in paths:
        assert {"saved_model.pb", "variables"} <= set(os.listdir(path))
        assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask  # readable by a server as another user
    with pytest.raises(FileExistsError, match=r"m/7 already exists"):
        serving.export_classifier(model, tmp_path, "m", version=7)
    with pytest.raises(FileExistsError, match=r"m/2 already exists"):
        serving.export_classifier(model, tmp_path, "m", version=2)
    assert sorted(os.listdir(tmp_path / "m")) == [".export-left-by-a-kill.tmp", "2", "3", "7"]
    with pytest.raises(ValueError, match="non-negative integer"):
        serving.export_classifier(model, tmp_path, "m", version=-1)
    with pytest.raises(ValueError, match="plain folder name"):
        serving.export_classifier(model, tmp_path, "a/b")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failure_mid_export_leaves_no_version_directory(tmp_path, monkeypatch, error):
    written = []

    def fail_halfway(archive, filepath, *args, **kwargs):
        os.makedirs(os.path.join(filepath, "variables"), exist_ok=True)
        pathlib.Path(filepath, "saved_model.pb").write_bytes(b"half")
        written.append(filepath)
        raise error("killed mid-export")

    monkeypatch.setattr(ARCHIVE, "write_out", fail_halfway)
    with pytest.raises(error, match="killed mid-export"):
        serving.export_classifier(_classifier(), tmp_path, "m", version=1)
    assert written and not os.path.basename(written[0]).isdigit()
    assert os.listdir(tmp_path / "m") == []


def test_an_export_that_loses_a_race_takes_the_next_version(tmp_path, monkeypatch):
    def another_export_finishes_first(archive, filepath, *args, **kwargs):
        pathlib.Path(filepath, "saved_model.pb").write_bytes(b"ours")  # a stand-in SavedModel
        (tmp_path / "m" / "1").mkdir()
        (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"theirs")

    monkeypatch.setattr(ARCHIVE, "write_out", another_export_finishes_first)
    classifier = _classifier()
    assert serving.export_classifier(classifier, tmp_path, "m") == str(tmp_path / "m" / "2")
    assert (tmp_path / "m" / "1" / "saved_model.pb").read_bytes() == b"theirs"
    assert (tmp_path / "m" / "2" / "saved_model.pb").read_bytes() == b"ours"
    # An explicit version that another export takes meanwhile is refused, not
    # replaced, even while the other one has not written anything into it yet.
    for theirs in (b"theirs", None):
        shutil.rmtree(tmp_path / "m" / "1")
        if theirs is None:
            monkeypatch.setattr(ARCHIVE, "write_out", lambda *args, **kwargs: (tmp_path / "m" / "1").mkdir())
        with pytest.raises(FileExistsError, match="m/1 already exists"):
            serving.export_classifier(classifier, tmp_path, "m", version=1)
        assert os.listdir(tmp_path / "m" / "1") == (["saved_model.pb"] if theirs else [])
        assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]


def test_the_loaded_signatures_reject_a_wrong_dtype_or_shape(run):
    _, _, version_dir = run
    signatures = tf.saved_model.load(str(version_dir)).signatures
    x = _images(2)
    assert signatures["serving_default"](images=tf.constant(x))["probabilities"].shape == (2, CLASSES)
    with pytest.raises(tf.errors.InvalidArgumentError, match="uint8"):
        signatures["serving_default"](images=tf.constant(x, tf.float32))
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError)):
        signatures["serving_float"](images=tf.constant(x))
    for bad in (_images(2, shape=(4, 8, 1)), _images(2, shape=(8, 8, 3))):
        with pytest.raises(tf.errors.InvalidArgumentError, match="[Ss]hape"):
            signatures["serving_default"](images=tf.constant(bad))


def test_a_vector_classifier_exports_one_float_signature(tmp_path):
    model = baselines.NoisyLabelClassifier(networks.build_mlp_classifier((2,), CLASSES))
    version_dir = serving.export_classifier(model, tmp_path, "moons")
    signatures = tf.saved_model.load(version_dir).signatures
    assert set(signatures) == {"serving_default"}
    spec = signatures["serving_default"].structured_input_signature[1]
    assert {k: (v.dtype, tuple(v.shape)) for k, v in spec.items()} == {
        "features": (tf.float32, (None, 2))}
    x = np.random.default_rng(0).normal(size=(5, 2))
    predictor = predict.load_predictor(tmp_path / "moons")
    class_ids, probabilities = predict.predict_images(predictor, x)
    np.testing.assert_allclose(probabilities, model.predict(x, verbose=0), atol=1e-6)
    np.testing.assert_array_equal(class_ids, probabilities.argmax(axis=-1))
    with pytest.raises(ValueError, match="folder of images needs a model of 1, 3 or 4-channel images"):
        predict.read_inputs(tmp_path, predictor.input_shape)
    # A bare classifier's .keras file: its logits become probabilities too.
    model.classifier.save(tmp_path / "classifier.keras")
    _, from_file = predict.predict_images(predict.load_predictor(tmp_path / "classifier.keras"), x)
    np.testing.assert_allclose(from_file, probabilities, atol=1e-6)


def test_export_run_names_the_model_after_the_method_and_explains_a_missing_model(run, tmp_path):
    model, workdir, _ = run
    path = serving.export_run(workdir, tmp_path / "exports")
    assert path == str(tmp_path / "exports" / "causalnl" / "1")
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "checkpoint.keras").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"unfinished/model.keras not found: the run has not finished"):
        serving.export_run(tmp_path / "unfinished", tmp_path / "exports")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/model\.keras not found: train .*scripts/train\.py"):
        serving.export_run(tmp_path / "empty", tmp_path / "exports")
    with pytest.raises(FileNotFoundError, match="No work directory"):
        serving.export_run(tmp_path / "missing", tmp_path / "exports")
    assert os.listdir(tmp_path / "exports" / "causalnl") == ["1"]


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["input"] for r in rows]
    class_ids = np.array([int(r["class_id"]) for r in rows])
    probabilities = np.array([[float(r[f"probability_{k}"]) for k in range(CLASSES)] for r in rows])
    return list(rows[0]), names, class_ids, probabilities


def test_predict_from_a_run_and_from_an_export_agree_on_npy_and_folder_inputs(run, tmp_path):
    model, workdir, version_dir = run
    x = _images(7, seed=2)
    np.save(tmp_path / "uint8.npy", x)
    np.save(tmp_path / "float.npy", x[:, :, :, 0].astype(np.float64) / 255)  # (N, H, W), floats
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "b.png").write_bytes(tf.io.encode_png(x[0]).numpy())
    (folder / "a.png").write_bytes(tf.io.encode_png(x[1]).numpy())
    (folder / "c.jpg").write_bytes(tf.io.encode_jpeg(x[2]).numpy())
    (folder / "d_rgb.png").write_bytes(tf.io.encode_png(np.repeat(x[3], 3, axis=-1)).numpy())
    (folder / "notes.txt").write_text("not an image")
    jpeg = tf.io.decode_jpeg((folder / "c.jpg").read_bytes(), channels=1).numpy()
    expected = {
        "uint8.npy": ([str(i) for i in range(7)], model.predict(x, verbose=0)),
        "float.npy": ([str(i) for i in range(7)], model.predict(x, verbose=0)),
        "folder": (["a.png", "b.png", "c.jpg", "d_rgb.png"],  # sorted; RGB made gray; .txt skipped
                   model.predict(np.stack([x[1], x[0], jpeg, x[3]]), verbose=0)),
    }
    for source in (workdir, version_dir.parent):  # model.keras, and the export's highest version
        predictor = predict.load_predictor(source)
        assert (predictor.input_shape, predictor.num_classes) == (SHAPE, CLASSES)
        for inputs, (names, probabilities) in expected.items():
            got_names, images = predict.read_inputs(tmp_path / inputs, predictor.input_shape)
            class_ids, got = predict.predict_images(predictor, images, batch_size=3)
            assert got_names == names, (source, inputs)
            assert got.dtype == np.float32 and class_ids.dtype == np.int64
            np.testing.assert_allclose(got, probabilities, atol=1e-5, err_msg=f"{source} {inputs}")
            np.testing.assert_array_equal(class_ids, got.argmax(axis=-1))

    output = tmp_path / "out" / "predictions.csv"
    assert predict.predict_to_csv(version_dir, folder, output) == 4
    header, names, class_ids, probabilities = _read_csv(output)
    assert header == ["input", "class_id", "probability_0", "probability_1", "probability_2"]
    assert names == expected["folder"][0]
    np.testing.assert_allclose(probabilities, expected["folder"][1], atol=1e-5)
    np.testing.assert_array_equal(class_ids, probabilities.argmax(axis=-1))
    assert os.listdir(tmp_path / "out") == ["predictions.csv"]  # no temporary left


def test_the_highest_complete_version_is_loaded(tmp_path):
    for version in ("2", "10", "9"):
        (tmp_path / "m" / version).mkdir(parents=True)
        (tmp_path / "m" / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "m" / "11").mkdir()  # no saved_model.pb: not a SavedModel
    assert predict.latest_version_dir(tmp_path / "m") == str(tmp_path / "m" / "10")
    assert predict.latest_version_dir(tmp_path / "m" / "9") == str(tmp_path / "m" / "9")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        predict.latest_version_dir(tmp_path / "m" / "11")


def _write(path, array):
    np.save(path, array)
    return path


@pytest.mark.parametrize("make, match", [
    (lambda d: _write(d / "x.npy", _images(2).reshape(2, 64)), r"shape \(2, 64\) has the wrong rank"),
    (lambda d: _write(d / "x.npy", _images(2, shape=(8, 8, 3))), "images have 3 channels; the model takes 1"),
    (lambda d: _write(d / "x.npy", _images(2, shape=(6, 8, 1))), r"\(2, 6, 8, 1\) does not match .*\(N, 8, 8, 1\)"),
    (lambda d: _write(d / "x.npy", _images(2).astype(np.int64)), "dtype int64 is not supported"),
    (lambda d: _write(d / "x.npy", _images(2).astype(np.float32)), r"float images must lie in \[0, 1\]"),
    (lambda d: _write(d / "x.npy", np.full((1, *SHAPE), np.nan)), "NaN"),
    (lambda d: _write(d / "x.npy", np.zeros((0, *SHAPE), np.uint8)), "no inputs"),
    (lambda d: d / "missing.npy", "no such file"),
    (lambda d: d / "x.csv", "must be a .npy file or a folder"),
    (lambda d: d, "no PNG or JPEG files"),
])
def test_bad_inputs_are_refused_before_any_work(tmp_path, make, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        predict.read_inputs(make(tmp_path), SHAPE)


def test_a_wrong_image_size_or_broken_file_names_the_file(run, tmp_path):
    (tmp_path / "a.png").write_bytes(tf.io.encode_png(_images(1)[0]).numpy())
    (tmp_path / "big.png").write_bytes(tf.io.encode_png(_images(1, shape=(16, 12, 1))[0]).numpy())
    output = tmp_path / "out.csv"
    with pytest.raises(ValueError, match=r"big.png: image is 16x12 pixels \(height x width\); the model takes 8x8"):
        predict.predict_to_csv(run[2], tmp_path, output)
    assert not output.exists()
    (tmp_path / "big.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"big\.png: not a readable PNG or JPEG"):
        predict.read_inputs(tmp_path, SHAPE)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        predict.load_predictor(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such run directory or SavedModel"):
        predict.load_predictor(tmp_path / "nothing")
    # The inputs are checked before the model is loaded.
    with pytest.raises(FileNotFoundError, match=r"missing\.npy: no such file"):
        predict.predict_to_csv(tmp_path / "nothing", tmp_path / "missing.npy", output)


#: Loads an export with TensorFlow alone and saves both signatures' outputs.
RELOAD = """
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
outputs = {"uint8": loaded.signatures["serving_default"](images=tf.constant(x)),
           "float": loaded.signatures["serving_float"](images=tf.constant(x.astype(np.float32) / 255))}
np.savez(sys.argv[3], **{f"{kind}_{name}": value.numpy()
                         for kind, out in outputs.items() for name, value in out.items()})
"""


class Process:
    """A command started in the background; `result()` waits and returns its stdout."""

    def __init__(self, command, log_dir):
        self.command = command
        self.stdout, self.stderr = log_dir / "stdout.txt", log_dir / "stderr.txt"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT, env={
                **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)})

    def result(self):
        returncode = self.process.wait(timeout=600)
        assert returncode == 0, f"{self.command} failed:\n{self.stderr.read_text()[-3000:]}"
        return self.stdout.read_text()


@pytest.fixture(scope="module")
def outside(run, tmp_path_factory):
    """(folder, {name: Process}): saved_model_cli, a fresh-process reload and
    the two scripts, started together (each spends seconds importing TensorFlow)."""
    _, workdir, version_dir = run
    folder = tmp_path_factory.mktemp("outside")
    np.save(folder / "x.npy", _images(10, seed=1))
    commands = {
        "reload": [PYTHON, "-c", RELOAD, str(version_dir), str(folder / "x.npy"), str(folder / "reloaded.npz")],
        "export": [PYTHON, "scripts/export.py", f"--workdir={workdir}", f"--base_dir={folder / 'exports'}",
                   "--model_name=cnn", "--version=3"],
        "predict": [PYTHON, "scripts/predict.py", f"--model={version_dir.parent}",
                    f"--inputs={folder / 'x.npy'}", f"--output={folder / 'out.csv'}", "--batch_size=3"],
    }
    if SAVED_MODEL_CLI.exists():
        commands["saved_model_cli"] = [str(SAVED_MODEL_CLI), "show", "--all", "--dir", str(version_dir)]
    processes = {}
    for name, command in commands.items():
        (folder / name).mkdir()
        processes[name] = Process(command, folder / name)
    yield folder, processes
    for process in processes.values():
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def test_saved_model_cli_lists_the_signatures(outside):
    _, processes = outside
    if "saved_model_cli" not in processes:
        pytest.skip(f"saved_model_cli is neither beside {PYTHON} nor on PATH")
    shown = processes["saved_model_cli"].result()

    def signature(name):
        block = re.search(rf"signature_def\['{name}'\]:(.*?)Method name is", shown, re.S).group(1)
        return {(kind, key): (dtype, shape) for kind, key, dtype, shape in re.findall(
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s*dtype: (\w+)\s*shape: (\([^)]*\))", block)}

    outputs = {("outputs", "probabilities"): ("DT_FLOAT", "(-1, 3)"),
               ("outputs", "class_ids"): ("DT_INT64", "(-1)")}
    assert signature("serving_default") == {("inputs", "images"): ("DT_UINT8", "(-1, 8, 8, 1)"), **outputs}
    assert signature("serving_float") == {("inputs", "images"): ("DT_FLOAT", "(-1, 8, 8, 1)"), **outputs}


def test_a_fresh_process_reload_matches_keras_predict(run, outside):
    model = run[0]
    folder, processes = outside
    processes["reload"].result()
    out = np.load(folder / "reloaded.npz")
    expected = model.predict(np.load(folder / "x.npy"), verbose=0)
    assert expected.std(axis=0).min() > 0.01  # far above the tolerance: the inputs matter
    for kind in ("uint8", "float"):
        probabilities, class_ids = out[f"{kind}_probabilities"], out[f"{kind}_class_ids"]
        assert probabilities.dtype == np.float32 and class_ids.dtype == np.int64
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        np.testing.assert_array_equal(class_ids, probabilities.argmax(axis=-1))


def test_the_export_and_predict_scripts(run, outside):
    model = run[0]
    folder, processes = outside
    assert processes["export"].result().strip().splitlines()[-1] == str(folder / "exports" / "cnn" / "3")
    assert os.path.isfile(folder / "exports" / "cnn" / "3" / "saved_model.pb")
    printed = processes["predict"].result().strip().splitlines()[-1]
    assert printed == f"wrote 10 predictions to {folder / 'out.csv'}"
    _, names, class_ids, probabilities = _read_csv(folder / "out.csv")
    assert names == [str(i) for i in range(10)]
    np.testing.assert_allclose(probabilities, model.predict(np.load(folder / "x.npy"), verbose=0), atol=1e-5)
    np.testing.assert_array_equal(class_ids, probabilities.argmax(axis=-1))
