"""Whole-model training: a keras-optzoo optimizer vs its Keras built-in vs
a plain torch training loop with its reference, on the same model.

    python -m benchmarks.whole_model --backend torch --quick
    python -m benchmarks.whole_model --backend jax --out results/whole_model_jax.json
    python -m benchmarks.whole_model --backend torch --quick \
        --optimizers lamb lars adamp muon adafactor \
        --out benchmarks/results/whole_model_wave2_torch.json

Two models built from Keras layers, on random data: a ResNet-style CNN
(32x32x3 images, three residual blocks of 16-32 channels with batch normalisation, 10 classes)
and a small transformer block (sequences of 32 tokens of width 64,
multi-head attention, layer normalisation, a feed-forward block). Each
candidate runs in its own subprocess (so peak memory is its own):

* ``zoo``: ``model.fit`` with the zoo optimizer (``--optimizers``, names
  of ``benchmarks/step_time.py``'s table, default ``adamw``; AdamW with
  weight decay 1e-2, the others with that table's arguments);
* ``keras``: ``model.fit`` with the Keras built-in of the same name, where
  Keras has one (a different algorithm for Lamb, Muon and Adafactor: see
  each zoo class's "Differs from" note);
* ``torch loop`` (torch backend): the same Keras model used as a
  ``torch.nn.Module`` in a plain loop (forward, ``loss.backward()``, the
  reference's ``step()``: its fastest variant of step_time.py's table that
  builds here, fused first; gradients then set to None).

Reported: the median time per training step over rounds (one round = one
epoch of ``steps`` batches, after a warm-up epoch that compiles), the
optimizer's share (the optimizer step alone on the model's variables,
timed like ``step_time.py``, over the training step), and the peak resident
memory of the process (``ru_maxrss``; on CUDA also
``torch.cuda.max_memory_allocated``). ``--quick`` keeps each backend under
three minutes on a 2-core CPU.
"""

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys

from benchmarks import write_json
from benchmarks import step_time

MODELS = ("resnet", "transformer")
LR, WD = 1e-3, 1e-2


def _build(name):
    import keras

    layers = keras.layers
    if name == "resnet":
        inputs = keras.Input((32, 32, 3))
        x = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        for filters, stride in ((16, 1), (32, 2), (32, 1)):
            shortcut = x
            y = layers.Conv2D(filters, 3, strides=stride, padding="same",
                              use_bias=False)(x)
            y = layers.BatchNormalization()(y)
            y = layers.ReLU()(y)
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
            y = layers.BatchNormalization()(y)
            if stride != 1 or shortcut.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=stride,
                                         use_bias=False)(shortcut)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Dense(10)(x)
        shape = (32, 32, 3)
    else:
        inputs = keras.Input((32, 64))
        a = layers.MultiHeadAttention(num_heads=4, key_dim=16)(inputs,
                                                               inputs)
        x = layers.LayerNormalization()(layers.Add()([inputs, a]))
        f = layers.Dense(256, activation="gelu")(x)
        f = layers.Dense(64)(f)
        x = layers.LayerNormalization()(layers.Add()([x, f]))
        x = layers.GlobalAveragePooling1D()(x)
        outputs = layers.Dense(10)(x)
        shape = (32, 64)
    return keras.Model(inputs, outputs), shape


def _optimizer(impl, name="adamw"):
    import keras

    if name == "adamw":
        if impl == "zoo":
            import keras_optzoo as oz

            return oz.AdamW(learning_rate=LR, weight_decay=WD)
        return keras.optimizers.AdamW(learning_rate=LR, weight_decay=WD)
    entry = step_time.OPTIMIZERS[name]
    if impl == "zoo":
        import keras_optzoo as oz

        return getattr(oz, entry.zoo)(learning_rate=step_time.LEARNING_RATE,
                                      **entry.zoo_kwargs)
    return getattr(keras.optimizers, entry.keras)(
        learning_rate=step_time.LEARNING_RATE, **entry.keras_kwargs)


def _reference_optimizer(params, name):
    """The fastest torch-side reference of ``name`` that builds and steps
    here (fused, then foreach, then the for-loop variant)."""
    import torch

    if name == "adamw":
        try:
            opt = torch.optim.AdamW(params, lr=LR, weight_decay=WD,
                                    fused=True)
            opt.step()
            return opt
        except (RuntimeError, TypeError, ValueError):
            return torch.optim.AdamW(params, lr=LR, weight_decay=WD,
                                     foreach=True)
    for peer in reversed(step_time.OPTIMIZERS[name].torch):
        try:
            opt = peer.make(params)
            opt.step()
            return opt
        except (RuntimeError, TypeError, ValueError):
            continue
    raise RuntimeError(f"no torch reference of {name} builds here")


def _data(shape, steps, batch):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * batch,) + shape).astype("float32")
    y = rng.integers(0, 10, steps * batch).astype("int32")
    return x, y


def _optimizer_alone(backend, opt, model, rounds):
    """The optimizer step alone on the model's variables (step_time.py)."""
    bench = {"torch": step_time.TorchBench, "jax": step_time.JaxBench,
             "tensorflow": step_time.TensorFlowBench}[backend]()
    shapes = [tuple(w.shape) for w in model.trainable_weights]
    c = bench.keras_candidate("alone", opt, shapes)
    # 20 warm-up steps: past the first steps, where the torch fast path
    # may trace a step again when a ``where`` guard changes (AdamP's
    # projection conditions flip during the first ~10 steps)
    step_time.measure([c], rounds, warmup=20, min_batch_s=0.02)
    return step_time.summary(c)["median_ms"]


def _torch_loop(model, x, y, batch, steps, rounds, name="adamw"):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    opt = _reference_optimizer(params, name)
    xs = torch.from_numpy(x)
    ys = torch.from_numpy(y).long()
    if torch.cuda.is_available():
        xs, ys = xs.cuda(), ys.cuda()
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        for i in range(steps):
            xb = xs[i * batch:(i + 1) * batch]
            yb = ys[i * batch:(i + 1) * batch]
            loss = loss_fn(model(xb, training=True), yb)
            loss.backward()
            opt.step()
            for p in params:
                p.grad = None

    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    training = step_time.time_epochs(epoch, sync, steps, rounds)
    for p in params:  # the optimizer step alone
        p.grad = torch.ones_like(p) * 1e-3
    c = step_time.Candidate("alone", opt.step, sync, 0)
    step_time.measure([c], rounds, warmup=3, min_batch_s=0.02)
    return training, step_time.summary(c)["median_ms"]



def run_one(backend, model_name, impl, quick, name="adamw"):
    """One candidate, in this process (called in a subprocess)."""
    import keras

    keras.utils.set_random_seed(0)
    steps = 20 if quick else 200
    rounds = 2 if quick else 5
    batch = 32
    model, shape = _build(model_name)
    x, y = _data(shape, steps, batch)
    if impl == "torch loop":
        training, opt_ms = _torch_loop(model, x, y, batch, steps, rounds,
                                       name)
    else:
        model.compile(
            optimizer=_optimizer(impl, name),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=backend != "torch")
        training = step_time.time_epochs(
            lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0),
            lambda: None, steps, rounds)
        opt_ms = _optimizer_alone(backend, _optimizer(impl, name), model,
                                  rounds)
    step_ms = training["median_ms"]
    record = {
        "backend": backend, "model": model_name, "impl": impl,
        "optimizer": name,
        "n_params": int(sum(math.prod(w.shape)
                            for w in model.trainable_weights)),
        "steps": steps, "batch": batch, "rounds": rounds,
        "step_median_ms": step_ms, "step_min_ms": training["min_ms"],
        "step_max_ms": training["max_ms"], "optimizer_step_ms": opt_ms,
        "optimizer_share": opt_ms / step_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        / 1024,
    }
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            record["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return record


def _load():
    try:
        return os.getloadavg()
    except OSError:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", required=True,
                        choices=["torch", "jax", "tensorflow"])
    parser.add_argument("--quick", action="store_true",
                        help="20 steps per round, 2 rounds (< 3 min)")
    parser.add_argument("--models", nargs="*", default=list(MODELS),
                        choices=list(MODELS))
    parser.add_argument("--optimizers", nargs="*", default=["adamw"],
                        help="names of benchmarks/step_time.py's table")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "IMPL", "OPT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    step_time._configure_threads(args.backend, args.threads)
    if args.one:
        if args.backend == "torch":
            import torch

            torch.set_num_threads(args.threads)
        record = run_one(args.backend, args.one[0], args.one[1], args.quick,
                         args.one[2])
        print("RESULT " + json.dumps(record), flush=True)
        return
    for name in args.optimizers:
        if name != "adamw" and name not in step_time.OPTIMIZERS:
            parser.error(f"unknown optimizer {name!r}")
    result = {"backend": args.backend, "quick": args.quick,
              "threads": args.threads,
              "machine": {"cpus": os.cpu_count(),
                          "platform": platform.platform(),
                          "load_before": _load()},
              "records": []}
    jobs = []
    for name in args.optimizers:
        has_keras = name == "adamw" or step_time.OPTIMIZERS[name].keras
        impls = ["zoo"] + (["keras"] if has_keras else []) + (
            ["torch loop"] if args.backend == "torch" else [])
        jobs += [(m, impl, name) for m in args.models for impl in impls]
    for model_name, impl, name in jobs:
        cmd = [sys.executable, "-m", "benchmarks.whole_model",
               "--backend", args.backend, "--threads", str(args.threads),
               "--one", model_name, impl, name] + (
                   ["--quick"] if args.quick else [])
        out = subprocess.run(cmd, capture_output=True, text=True,
                             check=False)
        line = next((ln for ln in out.stdout.splitlines()
                     if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"  {name} {model_name} {impl}: failed\n"
                  f"{out.stderr[-2000:]}", flush=True)
            continue
        record = json.loads(line[7:])
        result["records"].append(record)
        print(f"  [{args.backend}] {name:9s} {model_name:11s} {impl:10s} "
              f"{record['step_median_ms']:8.2f} ms/step  optimizer "
              f"{record['optimizer_step_ms']:6.2f} ms "
              f"({record['optimizer_share']:.0%})  peak "
              f"{record['peak_rss_mb']:.0f} MB", flush=True)
    result["machine"]["load_after"] = _load()
    write_json(result, args.out)


if __name__ == "__main__":
    main()
