"""Step time of the 8-bit optimizers (issue 22), one backend per run.

    KERAS_BACKEND=jax python -m benchmarks.bnb8_step_time
    KERAS_BACKEND=tensorflow python -m benchmarks.bnb8_step_time
    KERAS_BACKEND=torch python -m benchmarks.bnb8_step_time

One 1024x1024 Dense kernel (quantised in its torch layout, 4096 blocks) and
a 1024 bias. JAX: ``jax.jit(stateless_apply)``; TensorFlow:
``tf.function(jit_compile=True)`` around ``apply``; both against the zoo's
32-bit AdamW compiled the same way. torch: the eager ``apply`` against
bitsandbytes 0.50.2's AdamW8bit / Lion8bit / AdEMAMix8bit on CPU and the
zoo's AdamW. Median of ``--reps`` steps after two warm-up steps, in ms.
"""

import argparse
import os
import platform
import statistics
import time
import warnings

from benchmarks import write_json

SHAPES = [(1024, 1024), (1024,)]
NAMES = ["kernel", "bias"]


def _timed(step, sync, reps):
    step()
    step()
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _zoo(cls, params, grads, reps):
    import keras
    from keras import ops

    backend = keras.backend.backend()
    variables = [keras.Variable(p, name=n) for p, n in zip(params, NAMES)]
    opt = cls()
    opt.build(variables)
    tensors = [ops.convert_to_tensor(g) for g in grads]
    if backend == "jax":
        import jax

        fn = jax.jit(opt.stateless_apply)
        state = {"opt": [v.value for v in opt.variables],
                 "vars": [v.value for v in variables]}

        def step():
            state["vars"], state["opt"] = fn(state["opt"], tensors,
                                             state["vars"])

        def sync():
            jax.block_until_ready(state["vars"])
        return _timed(step, sync, reps)
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda: opt.apply(tensors, variables),
                         jit_compile=True)
        return _timed(fn, lambda: variables[0].numpy(), reps)
    return _timed(lambda: opt.apply(tensors, variables), lambda: None, reps)


def _bnb(name, params, grads, reps):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import bitsandbytes
    ps = [torch.tensor(p.T.copy() if p.ndim == 2 else p,
                       requires_grad=True) for p in params]
    for p, g in zip(ps, grads):
        p.grad = torch.tensor(g.T.copy() if g.ndim == 2 else g)
    opt = getattr(bitsandbytes.optim, name)(ps)
    return _timed(opt.step, lambda: None, reps)


def run(reps):
    import keras
    import numpy as np

    import keras_optzoo as oz

    backend = keras.backend.backend()
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype("float32") for s in SHAPES]
    grads = [1e-3 * rng.standard_normal(s).astype("float32")
             for s in SHAPES]
    out = {"zoo AdamW (32-bit)": _zoo(oz.AdamW, params, grads, reps)}
    for name in ("AdamW8bit", "Lion8bit", "AdEMAMix8bit"):
        out[f"zoo {name}"] = _zoo(getattr(oz, name), params, grads, reps)
        if backend == "torch":
            out[f"bitsandbytes {name} (CPU)"] = _bnb(name, params, grads,
                                                     reps)
    for k, v in out.items():
        print(f"  {backend:10s} {k:34s} {v:8.2f} ms", flush=True)
    return {"backend": backend, "shapes": SHAPES, "reps": reps,
            "median_ms": out,
            "machine": {"cpus": os.cpu_count(),
                        "platform": platform.platform(),
                        "load": os.getloadavg()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    result = run(args.reps)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
