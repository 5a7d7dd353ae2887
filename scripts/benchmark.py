"""Prints throughput figures: CausalNL against plain cross-entropy, the input
pipeline against pre-batched in-memory tensors, and noise synthesis time.

    python scripts/benchmark.py [--classifier small_cnn] [--steps 40] [--repeats 3]
    python scripts/benchmark.py --check_inputs [--vae_width 16]
    python scripts/benchmark.py --precision [--vae_width 16]
    python scripts/benchmark.py --profile [--vae_width 16]
    python scripts/benchmark.py --table [--classifiers small_cnn,resnet18_imagenet] [--precisions float32]
    python scripts/benchmark.py --trace runs/trace [--steps 10]
    python scripts/benchmark.py --batch_norm [--steps 8] [--repeats 8]

`--check_inputs` measures instead what `fit()`'s per-batch input checks
(`validation.checked_dataset`) cost on the training pipeline, for CausalNL
and for the CE baseline (one network, where they weigh most). `--precision`
measures CausalNL and CE under each of Keras' policies (`train.precision`:
float32, mixed_bfloat16, mixed_float16) on pre-batched in-memory tensors.
`--profile` times each of CausalNL's eight networks alone, forward and
forward + backward (the gradient of its output's sum), on a batch of
FashionMNIST shapes, beside one whole training step. `--table` prints the
step time, examples/s and peak memory (the process's maximum RSS) of CE and
CausalNL (VAE widths 32 and 16) for each classifier and precision, each
contender in a fresh process so that its memory is its own, and the
CausalNL/CE throughput ratio; `resnet18_cifar` and `resnet18_imagenet` are
ResNet-18 with the 3x3 stem and with torchvision's 7x7 stem and max-pool.
`--batch_norm` times CausalNL's step with Keras' BatchNormalization against
the fused `tf_causalnl.networks.layers.BatchNormalization` the networks use, the two
models in one process, alternating as every comparison here does. `--trace DIR` records
TensorFlow's profiler trace of `--steps` CausalNL steps into DIR (for
TensorBoard's profile tab) and, where xprof is installed (`pip install
xprof`), prints the busy time per op type and per network. `--jit_compile`
compiles the train steps of `--table`, `--trace` and `--batch_norm` with XLA.

Figures are examples per second of training (after a warm-up fit, so tracing is
not counted), median over repeats; contenders alternate order between repeats.
Uses the real FashionMNIST training images when present, else random ones.
"""

import collections
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import tf_env  # noqa: F401, E402  (first: TensorFlow's environment before it loads)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tf_causalnl import CausalNL, baselines, data, networks, noise, validation  # noqa: E402
from tf_causalnl.networks import layers  # noqa: E402

_CLASSIFIER = flags.DEFINE_string("classifier", "small_cnn", "A name in networks.CLASSIFIERS.")
_STEPS = flags.DEFINE_integer("steps", 40, "Training steps per measurement.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Measurements per contender (median reported).")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_CHECK_INPUTS = flags.DEFINE_boolean("check_inputs", False, "Only measure the cost of fit()'s per-batch input checks.")
_PRECISION = flags.DEFINE_boolean("precision", False, "Only compare float32 with the mixed-precision policies.")
_PROFILE = flags.DEFINE_boolean("profile", False, "Only time CausalNL's step network by network.")
_VAE_WIDTH = flags.DEFINE_integer("vae_width", 32, "Maps of CausalNL's first VAE conv layer (the CPU grid uses 16).")
_TABLE = flags.DEFINE_boolean("table", False, "Only print the table of step time, throughput and peak memory.")
_CLASSIFIERS = flags.DEFINE_list("classifiers", ["small_cnn", "resnet18_cifar", "resnet18_imagenet"],
                                 "The table's classifiers.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "The table's precisions.")
_TRACE = flags.DEFINE_string("trace", None, "Only record a profiler trace of CausalNL's steps into this directory.")
_BATCH_NORM = flags.DEFINE_boolean("batch_norm", False, "Only compare Keras' batch norm with the fused one.")
_JIT = flags.DEFINE_boolean("jit_compile", False, "Compile the train steps of --table, --trace and --batch_norm with XLA.")
_ONE = flags.DEFINE_string("one", None, "Internal: time one contender of --table, given as JSON, and print JSON.")

#: The table's classifier names: (name in networks.CLASSIFIERS, builder keyword arguments).
TABLE_CLASSIFIERS = {"small_cnn": ("small_cnn", {}), "resnet18_cifar": ("resnet18", {"stem": "cifar"}),
                     "resnet18_imagenet": ("resnet18", {"stem": "imagenet"})}


def _fashion_mnist():
    try:
        ds = data.load_fashion_mnist(data.DEFAULT_FASHION_MNIST_DIR)
        return ds.x_train, ds.y_train, "real FashionMNIST"
    except (FileNotFoundError, ValueError):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(60000, 28, 28, 1), dtype=np.uint8)
        return x, rng.integers(0, 10, size=60000), "random FashionMNIST-shaped data"


def _models(classifier_name):
    def ce():
        model = networks.build_classifier(classifier_name, (28, 28, 1), 10)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def causalnl():
        model = CausalNL(networks.build_classifier(classifier_name, (28, 28, 1), 10), forget_rate=0.45,
                         vae_width=_VAE_WIDTH.value)
        model.compile("adam")
        return model

    return {"CE": ce, "CausalNL": causalnl}


def _examples_per_second(contenders, steps, repeats, batch_size, fit=None):
    """contenders: name -> (model, dataset). Returns name -> median examples/s.

    `fit(model, dataset, **kwargs)` trains; the default is `model.fit`.
    """
    fit = fit or (lambda model, dataset, **kwargs: model.fit(dataset, **kwargs))
    for model, dataset in contenders.values():
        fit(model, dataset, epochs=1, steps_per_epoch=5, verbose=0, shuffle=False)  # trace and warm up
    rates = {name: [] for name in contenders}
    for repeat in range(repeats):
        names = list(contenders) if repeat % 2 == 0 else list(contenders)[::-1]
        for name in names:
            model, dataset = contenders[name]
            start = time.perf_counter()
            fit(model, dataset, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    return {name: float(np.median(r)) for name, r in rates.items()}


def _wrapped_models():
    """name -> a maker of the CE baseline and of CausalNL, both through the library's fit."""
    def classifier():
        return networks.build_classifier(_CLASSIFIER.value, (28, 28, 1), 10)

    return {"CE baseline": lambda: baselines.NoisyLabelClassifier(classifier()),
            "CausalNL": lambda: CausalNL(classifier(), forget_rate=0.45, vae_width=_VAE_WIDTH.value)}


def _check_cost(x, y, steps, repeats, batch):
    """Examples/s on the training pipeline with and without fit()'s per-batch checks.

    Both contenders train through `keras.Model.fit` itself, one on the
    pipeline as it is and one on `validation.checked_dataset` of it, so that
    the checks are the only difference.
    """
    pipeline = data.train_dataset(x, y, batch_size=batch, seed=0).repeat()
    checked = validation.checked_dataset(pipeline, num_classes=10, input_shape=(28, 28, 1))
    alone = {}
    for repeat in range(repeats):  # The pipelines alone, no training: the checks' own cost.
        for name, dataset in (("unchecked", pipeline), ("checked", checked))[::1 if repeat % 2 == 0 else -1]:
            batches = iter(dataset.take(steps * 5))
            next(batches)
            start = time.perf_counter()
            for _ in batches:
                pass
            alone.setdefault(name, []).append((steps * 5 - 1) * batch / (time.perf_counter() - start))
    alone = {name: float(np.median(r)) for name, r in alone.items()}
    print(f"{'pipeline':12s} alone     unchecked {alone['unchecked']:8.1f} ex/s | checked {alone['checked']:8.1f} "
          f"ex/s | checked/unchecked {alone['checked'] / alone['unchecked']:.3f}")
    for name, make in _wrapped_models().items():
        models = [make(), make()]
        for model in models:
            model.compile("adam")
        rates = _examples_per_second({"unchecked": (models[0], pipeline), "checked": (models[1], checked)},
                                     steps, repeats, batch, fit=lambda m, d, **kw: keras.Model.fit(m, d, **kw))
        print(f"{name:12s} pipeline unchecked {rates['unchecked']:8.1f} ex/s | checked {rates['checked']:8.1f} "
              f"ex/s | checked/unchecked {rates['checked'] / rates['unchecked']:.3f}")


def _precision_cost(in_memory, steps, repeats, batch):
    """Examples/s of CausalNL and the CE baseline built under each policy of `networks.PRECISIONS`."""
    for name, make in _wrapped_models().items():
        contenders = {}
        for precision in networks.PRECISIONS:
            with networks.precision(precision):
                model = make()
            model.compile("adam")
            contenders[precision] = (model, in_memory)
        rates = _examples_per_second(contenders, steps, repeats, batch)
        print(f"{name:12s} " + " | ".join(
            f"{p} {r:7.1f} ex/s ({1000 * batch / r:.0f} ms/step, x{r / rates['float32']:.2f})"
            for p, r in rates.items()))


def _median_ms(function, repeats: int) -> float:
    function()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _profile(x, y, steps, repeats, batch):
    """Milliseconds per call of each network of branch 1 (branch 2 is the same), forward
    and forward + backward, and of one whole CausalNL training step."""
    model = _causalnl()
    images = tf.cast(x[:batch], tf.float32) / 255.0
    y_soft = tf.one_hot(y[:batch], 10)
    z = tf.random.normal((batch, model.z_dim))
    parts = {
        "classifier q(Y|X)": (model.classifiers[0], images),
        "latent encoder q(Z|X,Y)": (model.latent_encoders[0], [images, y_soft]),
        "decoder p(X|Y,Z)": (model.decoders[0], [z, y_soft]),
        "noisy-label decoder p(Y~|Y,X)": (model.noisy_label_decoders[0], [images, y_soft]),
    }
    total_forward = total_both = 0.0
    for name, (network, inputs) in parts.items():
        forward = tf.function(lambda n=network, i=inputs: n(i, training=True))

        @tf.function
        def both(n=network, i=inputs):
            with tf.GradientTape() as tape:
                outputs = n(i, training=True)
                total = tf.add_n([tf.reduce_sum(o) for o in tf.nest.flatten(outputs)])
            return tape.gradient(total, n.trainable_variables)

        ms_forward = _median_ms(lambda f=forward: [t.numpy() for t in tf.nest.flatten(f())], repeats * steps)
        ms_both = _median_ms(lambda f=both: [t.numpy() for t in f()], repeats * steps)
        total_forward, total_both = total_forward + ms_forward, total_both + ms_both
        print(f"{name:30s} forward {ms_forward:7.1f} ms | forward + backward {ms_both:7.1f} ms")
    print(f"{'sum of the 4 (one branch)':30s} forward {total_forward:7.1f} ms | forward + backward {total_both:7.1f} ms;"
          f" x2 branches {2 * total_both:.1f} ms")
    rate = _examples_per_second({"CausalNL": (model, _one_batch(x, y, batch))}, steps, repeats, batch)["CausalNL"]
    print(f"{'whole training step (fit)':30s} {1000 * batch / rate:7.1f} ms ({rate:.1f} ex/s)")


def _trace(x, y, steps, batch, directory):
    """TensorFlow's profiler trace of `steps` CausalNL steps; with xprof, busy time per op type and network."""
    model, dataset = _causalnl(), _one_batch(x, y, batch)
    model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
    tf.profiler.experimental.start(directory)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    tf.profiler.experimental.stop()
    try:
        from xprof.convert import raw_to_tool_data  # noqa: PLC0415 (optional, not a dependency)
    except ImportError:
        print(f"trace in {directory}; install xprof for the summary")
        return
    files = [str(p) for p in pathlib.Path(directory).glob("plugins/profile/*/*.xplane.pb")]
    table = json.loads(raw_to_tool_data.xspace_to_tool_data(files, "framework_op_stats", {})[0])[0]
    columns = [c["id"] for c in table["cols"]]
    rows = [dict(zip(columns, [cell.get("v") if cell else None for cell in r["c"]])) for r in table["rows"]]
    by_type, by_network = collections.Counter(), collections.Counter()
    for row in rows:
        if row["type"] == "IDLE":
            continue
        ms = row["total_self_time"] / 1000 / steps
        by_type[row["type"]] += ms
        network = next((n for n in ("noisy_label_decoder", "latent_encoder", "decoder", _CLASSIFIER.value)
                        if n in row["operation"]), "the rest (objective, Adam, metrics)")
        by_network[network, "backward" if "gradient_tape" in row["operation"] else "forward"] += ms
    print(f"busy thread-ms per step, both branches: {sum(by_type.values()):.1f}")
    for (network, direction), ms in sorted(by_network.items()):
        print(f"  {network:36s} {direction:8s} {ms:7.1f}")
    for op_type, ms in by_type.most_common(12):
        print(f"  {op_type:45s} {ms:7.1f}")


class _StepTimer(keras.callbacks.Callback):
    """Appends each training step's seconds to `times`."""

    def __init__(self, times: list):
        super().__init__()
        self.times = times

    def on_train_batch_begin(self, batch_index, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch_index, logs=None):
        self.times.append(time.perf_counter() - self.start)


def _batch_norm_cost(x, y, steps, repeats, batch):
    """CausalNL's step with Keras' BatchNormalization and with the fused one, alternating."""
    fused = layers.batch_norm  # every network's batch-norm maker; swapped for Keras' layer while building
    contenders = {}
    for name, maker in (("Keras' BatchNormalization", lambda: keras.layers.BatchNormalization(
            momentum=networks.BN_MOMENTUM)), ("fused (tf_causalnl.networks.layers)", fused)):
        layers.batch_norm = maker
        try:
            contenders[name] = (_causalnl(), _one_batch(x, y, batch))
        finally:
            layers.batch_norm = fused
    rates = _examples_per_second(contenders, steps, repeats, batch)
    for name, rate in rates.items():
        print(f"{name:28s} {1000 * batch / rate:7.1f} ms per step ({rate:.1f} ex/s)")
    keras_rate, fused_rate = rates.values()
    print(f"fused / Keras (time per step): {keras_rate / fused_rate:.3f}")


def _causalnl() -> CausalNL:
    """CausalNL as the benchmark's flags set it: --classifier, --vae_width; compiled with Adam."""
    model = CausalNL(networks.build_classifier(_CLASSIFIER.value, (28, 28, 1), 10), forget_rate=0.45,
                     vae_width=_VAE_WIDTH.value)
    model.compile("adam", jit_compile=_JIT.value)
    return model


def _one_batch(x, y, batch) -> tf.data.Dataset:
    """The first `batch` images and labels, scaled, repeated: training without input-pipeline cost."""
    return tf.data.Dataset.from_tensors((tf.cast(x[:batch], tf.float32) / 255.0,
                                         tf.constant(y[:batch], tf.int32))).repeat()


def _time_one(contender: dict, x, y, steps: int, batch: int) -> dict:
    """Median ms per training step (each step timed alone, after 3 warm-up steps) and peak RSS."""
    name, kwargs = TABLE_CLASSIFIERS[contender["classifier"]]
    with networks.precision(contender["precision"]):
        classifier = networks.build_classifier(name, (28, 28, 1), 10, **kwargs)
        model = (baselines.NoisyLabelClassifier(classifier) if contender["model"] == "CE" else
                 CausalNL(classifier, forget_rate=0.45, vae_width=contender["vae_width"]))
    model.compile("adam", jit_compile=contender["jit_compile"])
    dataset = _one_batch(x, y, batch)
    model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
    times = []
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[_StepTimer(times)])
    ms = 1000 * float(np.median(times))
    return {**contender, "ms": ms, "examples_per_s": 1000 * batch / ms,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _table(steps: int, batch: int) -> None:
    """Each contender in its own process; prints a Markdown table and the CausalNL/CE ratios."""
    jit = _JIT.value
    contenders = [{"model": "CE", "classifier": c, "precision": p, "vae_width": None, "jit_compile": jit}
                  for p in _PRECISIONS.value for c in _CLASSIFIERS.value]
    contenders += [{"model": "CausalNL", "classifier": c, "precision": p, "vae_width": w, "jit_compile": jit}
                   for p in _PRECISIONS.value for c in _CLASSIFIERS.value for w in (32, 16)]
    print(f"batch {batch}, median of {steps} steps after 3 warm-up steps, XLA {'on' if jit else 'off'}")
    print("| model | classifier | precision | VAE width | ms/step | examples/s | peak RSS (MB) | CausalNL/CE throughput |")
    print("|---|---|---|---|---|---|---|---|")
    ce_rates = {}
    for contender in contenders:
        output = subprocess.run([sys.executable, __file__, f"--one={json.dumps(contender)}", f"--steps={steps}",
                                 f"--batch_size={batch}"], capture_output=True, text=True, check=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        key = (row["classifier"], row["precision"])
        if row["model"] == "CE":
            ce_rates[key] = row["examples_per_s"]
        ratio = f"{row['examples_per_s'] / ce_rates[key]:.3f}" if row["model"] == "CausalNL" and key in ce_rates else ""
        print(f"| {row['model']} | {row['classifier']} | {row['precision']} | {row['vae_width'] or ''} | "
              f"{row['ms']:.0f} | {row['examples_per_s']:.1f} | {row['peak_rss_mb']:.0f} | {ratio} |", flush=True)


def main(argv):
    del argv
    if _ONE.value:
        x, y, _ = _fashion_mnist()
        print(json.dumps(_time_one(json.loads(_ONE.value), x, y, _STEPS.value, _BATCH.value)))
        return
    steps, repeats, batch = _STEPS.value, _REPEATS.value, _BATCH.value
    if _TABLE.value:  # each contender loads the data in its own process
        _table(steps, batch)
        return
    x, y, source = _fashion_mnist()
    print(f"data: {source}; classifier: {_CLASSIFIER.value}; batch {batch}; "
          f"{steps} steps x {repeats} repeats; {os.cpu_count()} CPUs; "
          f"TF {tf.__version__}, Keras {keras.__version__}")
    if _CHECK_INPUTS.value:
        _check_cost(x, y, steps, repeats, batch)
        return
    if _PROFILE.value:
        _profile(x, y, steps, repeats, batch)
        return
    if _TRACE.value:
        _trace(x, y, steps, batch, _TRACE.value)
        return
    if _BATCH_NORM.value:
        _batch_norm_cost(x, y, steps, repeats, batch)
        return

    n = steps * batch
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.reshape(tf.cast(x[:n], tf.float32) / 255.0, (steps, batch, 28, 28, 1)),
         tf.reshape(tf.constant(y[:n], tf.int32), (steps, batch)))
    ).cache().repeat()
    if _PRECISION.value:
        _precision_cost(in_memory, steps, repeats, batch)
        return
    pipeline = data.train_dataset(x, y, batch_size=batch, seed=0).repeat()

    results = {}
    for name, make in _models(_CLASSIFIER.value).items():
        rates = _examples_per_second(
            {"in-memory": (make(), in_memory), "pipeline": (make(), pipeline)}, steps, repeats, batch
        )
        results[name] = rates
        print(f"{name:9s} in-memory {rates['in-memory']:8.1f} ex/s | pipeline {rates['pipeline']:8.1f} ex/s "
              f"| pipeline/in-memory {rates['pipeline'] / rates['in-memory']:.3f}")
    ratio = results["CausalNL"]["in-memory"] / results["CE"]["in-memory"]
    print(f"CausalNL / CE throughput (in-memory): {ratio:.3f} "
          f"(CausalNL trains 8 networks; CE 1)")

    features = x.reshape(len(x), -1)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        noise.make_noisy_labels("idn", y, 10, 0.45, features=features, seed=0)
        times.append(time.perf_counter() - start)
    print(f"IDN noise for {len(y):,} examples: {np.median(times):.2f} s (median of 3)")
    for rate in (0.1, 0.2, 0.3, 0.4, 0.45, 0.5):
        realised = [
            noise.noise_report(y, noise.make_noisy_labels(
                "idn", y, 10, rate, features=features, seed=0, match_rate=match), 10).realized_rate
            for match in (True, False)
        ]
        print(f"IDN requested {rate:.2f}: realised {realised[0]:.4f} "
              f"(paper's protocol, match_rate=False: {realised[1]:.4f}), seed 0")


if __name__ == "__main__":
    app.run(main)
