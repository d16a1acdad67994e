"""Optimizer step time: keras-optzoo against each backend's native optimizers.

One process per Keras backend (the backend is fixed at import)::

    python -m benchmarks.step_time --backend torch --quick
    python -m benchmarks.step_time --backend jax --out results/jax.json

What is timed is one optimizer step on precomputed gradients, the way each
framework's training loop runs it:

* torch backend: ``optimizer.apply(grads, variables)`` under
  ``torch.no_grad()`` (as Keras's ``fit`` calls it), against
  ``torch.optim``'s for-loop, foreach and fused implementations
  (``optimizer.step()`` with ``.grad`` set);
* JAX: ``optimizer.stateless_apply`` under ``jax.jit`` with the variables
  and optimizer state donated, as Keras's ``fit`` runs it, against
  ``optax`` (a jitted update plus ``apply_updates``, donated likewise);
* TensorFlow: ``optimizer.apply`` inside ``tf.function(jit_compile=True)``.

Every zoo optimizer is compared with the Keras built-in of the same name
(whose update rule differs in details documented on each class, but not in
cost). Parameters come as 10 equal tensors for each total size, plus a
"many small tensors" case (1000 tensors of 1000), where per-tensor overhead
dominates.

Timing: warm-up calls (compilation included), then a batch size is
calibrated per candidate so one timed batch lasts >= ``--min-batch-ms``;
the candidates of one case are timed in interleaved rounds (rotating the
order), so that load from other processes spreads over all of them. Each
result is the median over rounds of the per-step time, with the min and
max. The process pins its math libraries to ``--threads`` threads (default
1) to keep the numbers comparable on a shared machine.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

SIZES = [10_000, 100_000, 1_000_000, 10_000_000, 30_000_000]
QUICK_SIZES = [10_000, 100_000, 1_000_000]
TENSORS_PER_SIZE = 10
MANY_SMALL = (1000, 1000)  # tensors, elements each
#: --quick on JAX/TF: XLA compiles a 1000-variable step in ~10-20 s per
#: candidate, so the many-small case keeps to these optimizers there
QUICK_MANY_SMALL_COMPILED = ("sgd_momentum", "adam")
LEARNING_RATE = 1e-3

#: name: (zoo class name, zoo kwargs, Keras class, torch.optim class,
#: optax function, kwargs shared by Keras/torch/optax in their spelling)
OPTIMIZERS = {
    "sgd": ("SGD", {}, "SGD", "SGD", "sgd", {}),
    "sgd_momentum": ("SGD", {"momentum": 0.9}, "SGD", "SGD", "sgd",
                     {"momentum": 0.9}),
    "adagrad": ("Adagrad", {}, "Adagrad", "Adagrad", "adagrad", {}),
    "rmsprop": ("RMSprop", {}, "RMSprop", "RMSprop", "rmsprop", {}),
    "adadelta": ("Adadelta", {}, "Adadelta", "Adadelta", "adadelta", {}),
    "adam": ("Adam", {}, "Adam", "Adam", "adam", {}),
    "adamw": ("AdamW", {"weight_decay": 1e-2}, "AdamW", "AdamW", "adamw",
              {"weight_decay": 1e-2}),
    "nadam": ("NAdam", {}, "Nadam", "NAdam", "nadam", {}),
    "adamax": ("Adamax", {}, "Adamax", "Adamax", "adamax", {}),
    "radam": ("RAdam", {}, None, "RAdam", "radam", {}),
}

#: --small (torch): the small/medium sizes of issue 14, where the fixed
#: per-step cost dominates, against torch.optim's fastest variant
SMALL_SIZES = [10_000, 100_000]
SMALL_OPTIMIZERS = ("sgd_momentum", "nadam", "rmsprop", "adadelta",
                    "adamax", "radam", "adam", "adagrad")

#: implementation labels; the first group is ours, the rest native peers
ZOO_IMPLS = ("zoo", "zoo (foreach)", "zoo (per-variable)")


def _configure_threads(backend, threads):
    """Before importing the backend: pin its thread pools."""
    if backend == "jax" and threads == 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_cpu_multi_thread_eigen=false"
            " intra_op_parallelism_threads=1").strip()
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ------------------------------------------------------------------ timing
class Candidate:
    """One implementation ready to step: ``step()``, ``sync()``."""

    def __init__(self, impl, step, sync, state_bytes, workspace_bytes=0):
        self.impl = impl
        self.step = step
        self.sync = sync
        self.state_bytes = state_bytes
        self.workspace_bytes = workspace_bytes
        self.batch = 1
        self.samples = []


def _timed(candidate, calls):
    start = time.perf_counter()
    for _ in range(calls):
        candidate.step()
    candidate.sync()
    return time.perf_counter() - start


def measure(candidates, rounds, warmup, min_batch_s):
    """Interleaved rounds; fills each candidate's per-step samples."""
    for c in candidates:
        _timed(c, warmup)  # compiles, allocates, fills caches
        elapsed = _timed(c, 1)
        c.batch = max(1, min(1000, int(min_batch_s / max(elapsed, 1e-7))))
    for r in range(rounds):
        shift = r % len(candidates)
        for c in candidates[shift:] + candidates[:shift]:
            c.samples.append(_timed(c, c.batch) / c.batch)


def summary(c):
    ms = [s * 1e3 for s in c.samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms),
            "max_ms": max(ms), "rounds": len(ms), "batch": c.batch}


# ---------------------------------------------------------------- backends
def _np_problem(shapes, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    params = [(0.1 * rng.standard_normal(s)).astype("float32")
              for s in shapes]
    grads = [(1e-3 * rng.standard_normal(s)).astype("float32")
             for s in shapes]
    return params, grads


def _keras_state_bytes(opt):
    import numpy as np

    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
               for v in opt.variables)


def _zoo(name):
    import keras_optzoo as oz

    cls_name, kwargs = OPTIMIZERS[name][:2]
    return getattr(oz, cls_name)(learning_rate=LEARNING_RATE, **kwargs)


def _keras_builtin(name):
    import keras

    cls_name, kwargs = OPTIMIZERS[name][2], OPTIMIZERS[name][5]
    if cls_name is None:
        return None
    return getattr(keras.optimizers, cls_name)(learning_rate=LEARNING_RATE,
                                               **kwargs)


class TorchBench:
    backend = "torch"

    def __init__(self, with_generic=True):
        import torch

        self.torch = torch
        self.with_generic = with_generic

    def keras_candidate(self, impl, opt, shapes, lean=False):
        import keras

        torch = self.torch
        params, grads = _np_problem(shapes)
        variables = [keras.Variable(p) for p in params]
        tensors = [torch.from_numpy(g) for g in grads]
        opt.build(variables)

        if lean:
            from keras_optzoo import fastpath

            if not hasattr(fastpath, "lean_step"):
                return None
            lean_step = fastpath.lean_step(opt, variables)
            if lean_step is None:
                return None

            def step():
                with torch.no_grad():
                    lean_step(tensors)
        else:
            def step():
                with torch.no_grad():
                    opt.apply(tensors, variables)

        workspace = 0
        if impl.startswith("zoo"):
            step()  # the workspace exists after a first step
            workspace = opt._multi_tensor.workspace_bytes()
        return Candidate(impl, step, lambda: None, _keras_state_bytes(opt),
                         workspace)

    def torch_candidate(self, impl, name, shapes, **flags):
        torch = self.torch
        params, grads = _np_problem(shapes)
        tensors = [torch.tensor(p, requires_grad=True) for p in params]
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g)
        cls_name, kwargs = OPTIMIZERS[name][3], OPTIMIZERS[name][5]
        try:
            opt = getattr(torch.optim, cls_name)(tensors, lr=LEARNING_RATE,
                                                 **kwargs, **flags)
            opt.step()
        except (TypeError, RuntimeError, ValueError):
            return None  # this torch version has no such variant
        state = sum(t.numel() * t.element_size()
                    for s in opt.state.values() for t in s.values()
                    if torch.is_tensor(t))
        return Candidate(impl, opt.step, lambda: None, state)

    def small_candidates(self, name, shapes):
        """--small: ours (Keras ``apply`` with the per-step retrace of the
    path before issue 14, ``apply`` with replay, and the lean path) against
        torch.optim's foreach and fused variants only."""
        out = []
        for impl, lean in (("zoo (retrace)", False), ("zoo", False),
                           ("zoo (lean)", True)):
            opt = _zoo(name)
            if impl == "zoo (retrace)":
                # the path before replay: _update traced every step, with
                # Python-number scalars (what issue 14 measured)
                opt._multi_tensor.replay = False
                opt._multi_tensor.device_scalars = False
            c = self.keras_candidate(impl, opt, shapes, lean=lean)
            if c is not None:
                out.append(c)
        for impl, flags in (("torch.optim (foreach)", {"foreach": True}),
                            ("torch.optim (fused)", {"fused": True})):
            c = self.torch_candidate(impl, name, shapes, **flags)
            if c is not None:
                out.append(c)
        return out

    def candidates(self, name, shapes):
        out = []
        for impl, mode in (("zoo", None), ("zoo (foreach)", "foreach"),
                           ("zoo (per-variable)", False)):
            if mode is False and not self.with_generic:
                continue
            opt = _zoo(name)
            opt.use_multi_tensor = mode
            out.append(self.keras_candidate(impl, opt, shapes))
        builtin = _keras_builtin(name)
        if builtin is not None:
            out.append(self.keras_candidate("keras", builtin, shapes))
        for impl, flags in (("torch.optim (for-loop)", {"foreach": False}),
                            ("torch.optim (foreach)", {"foreach": True}),
                            ("torch.optim (fused)", {"fused": True})):
            c = self.torch_candidate(impl, name, shapes, **flags)
            if c is not None:
                out.append(c)
        return out


class JaxBench:
    backend = "jax"

    def __init__(self):
        import jax

        self.jax = jax

    def keras_candidate(self, impl, opt, shapes):
        import keras

        jax = self.jax
        params, grads = _np_problem(shapes)
        variables = [keras.Variable(p) for p in params]
        opt.build(variables)
        state = {"opt": [v.value for v in opt.variables],
                 "vars": [v.value for v in variables]}
        grads = [jax.numpy.asarray(g) for g in grads]

        # Donated inputs in the order of the outputs, as Keras's JAX trainer
        # does (its state tuple goes in and comes out in one order): JAX
        # pairs donated buffers with outputs by shape, in order, and a
        # mismatch makes XLA copy every variable.
        def update(var_values, opt_values, grads):
            return opt.stateless_apply(opt_values, grads, var_values)

        fn = jax.jit(update, donate_argnums=(0, 1))

        def step():
            state["vars"], state["opt"] = fn(state["vars"], state["opt"],
                                             grads)

        return Candidate(impl, step,
                         lambda: jax.block_until_ready(state["vars"]),
                         _keras_state_bytes(opt))

    def optax_candidate(self, name, shapes):
        import optax

        jax = self.jax
        fn_name, kwargs = OPTIMIZERS[name][4], OPTIMIZERS[name][5]
        tx = getattr(optax, fn_name)(LEARNING_RATE, **kwargs)
        params, grads = _np_problem(shapes)
        params = [jax.numpy.asarray(p) for p in params]
        grads = [jax.numpy.asarray(g) for g in grads]
        state = {"params": params, "opt": tx.init(params)}

        def update(params, opt_state, grads):
            updates, opt_state = tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state

        fn = jax.jit(update, donate_argnums=(0, 1))

        def step():
            state["params"], state["opt"] = fn(state["params"], state["opt"],
                                               grads)

        nbytes = sum(leaf.nbytes
                     for leaf in jax.tree_util.tree_leaves(state["opt"]))
        return Candidate("optax", step,
                         lambda: jax.block_until_ready(state["params"]),
                         nbytes)

    def candidates(self, name, shapes):
        return [self.keras_candidate("zoo", _zoo(name), shapes),
                self.keras_candidate("keras", _keras_builtin(name), shapes),
                self.optax_candidate(name, shapes)]


class TensorFlowBench:
    backend = "tensorflow"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf

    def keras_candidate(self, impl, opt, shapes):
        import keras

        tf = self.tf
        params, grads = _np_problem(shapes)
        variables = [keras.Variable(p) for p in params]
        opt.build(variables)
        grads = [tf.constant(g) for g in grads]
        fn = tf.function(lambda g: opt.apply(g, variables), jit_compile=True)
        return Candidate(impl, lambda: fn(grads),
                         lambda: opt.iterations.numpy(),
                         _keras_state_bytes(opt))

    def candidates(self, name, shapes):
        return [self.keras_candidate("zoo", _zoo(name), shapes),
                self.keras_candidate("keras", _keras_builtin(name), shapes)]


# --------------------------------------------------------------------- fit
def fit_benchmark(bench, quick, rounds):
    """Whole ``fit`` of an MLP on synthetic data: time per training step,
    next to the optimizer step alone on the same variables."""
    import keras
    import numpy as np

    steps = 8 if quick else 32
    batch = 128
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * batch, 256)).astype("float32")
    y = rng.integers(0, 10, steps * batch).astype("int32")
    impls = [("zoo", lambda: _zoo("adam")), ("keras",
                                             lambda: _keras_builtin("adam"))]
    if bench.backend == "torch":
        def generic():
            opt = _zoo("adam")
            opt.use_multi_tensor = False
            return opt

        impls.insert(1, ("zoo (per-variable)", generic))
    records = []
    for impl, make in impls:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((256,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10),
        ])
        opt = make()
        model.compile(
            optimizer=opt,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=bench.backend != "torch")
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # warm-up
        per_step = []
        for _ in range(rounds):
            start = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
            per_step.append((time.perf_counter() - start) / steps * 1e3)
        shapes = [tuple(w.shape) for w in model.trainable_weights]
        alone = bench.keras_candidate(impl, make(), shapes)
        measure([alone], rounds, warmup=3, min_batch_s=0.02)
        opt_ms = summary(alone)["median_ms"]
        fit_ms = statistics.median(per_step)
        records.append({
            "optimizer": "adam", "impl": impl,
            "n_params": int(sum(np.prod(s) for s in shapes)),
            "fit_step_median_ms": fit_ms, "fit_step_min_ms": min(per_step),
            "fit_step_max_ms": max(per_step), "optimizer_step_ms": opt_ms,
            "optimizer_share": opt_ms / fit_ms,
        })
        print(f"  fit {impl:20s} {fit_ms:8.2f} ms/step, optimizer "
              f"{opt_ms:7.2f} ms ({opt_ms / fit_ms:.0%})", flush=True)
    return records


# -------------------------------------------------------------------- main
def cases(quick, small=False):
    sizes = SMALL_SIZES if small else (QUICK_SIZES if quick else SIZES)
    out = [(f"{_short(n)} params, {TENSORS_PER_SIZE} tensors", n,
            [(n // TENSORS_PER_SIZE,)] * TENSORS_PER_SIZE) for n in sizes]
    if small:
        return out
    count, each = MANY_SMALL
    out.append((f"{_short(count * each)} params, {count} tensors",
                count * each, [(each,)] * count))
    return out


def _short(n):
    """10000 -> "1e4", 30000000 -> "3e7"."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _load():
    try:
        return os.getloadavg()
    except OSError:
        return None


def _small_ratios(candidates):
    """ours / torch.optim's fastest, for each of our candidates."""
    ms = {c.impl: summary(c)["median_ms"] for c in candidates}
    native = [v for k, v in ms.items() if k.startswith("torch.optim")]
    if not native:
        return ""
    best = min(native)
    return "  ".join(f"{k}/best torch={v / best:.2f}x"
                     for k, v in ms.items() if k.startswith("zoo"))


def run(backend, quick=False, rounds=None, optimizers=None, threads=1,
        min_batch_ms=None, fit=True, small=False):
    import keras

    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
        bench = TorchBench()
    elif backend == "jax":
        bench = JaxBench()
    else:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        bench = TensorFlowBench()
    assert keras.backend.backend() == backend
    rounds = rounds or (5 if quick else 9)
    min_batch_s = (min_batch_ms or (20 if quick else 50)) / 1e3
    result = {
        "backend": backend, "quick": quick, "threads": threads,
        "rounds": rounds, "min_batch_ms": min_batch_s * 1e3,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "load_before": _load()},
        "versions": _versions(backend),
        "steps": [], "fit": [],
    }
    result["small"] = small
    names = optimizers or (list(SMALL_OPTIMIZERS) if small
                           else list(OPTIMIZERS))
    for label, n_params, shapes in cases(quick, small):
        print(f"[{backend}] {label}", flush=True)
        for name in names:
            if quick and backend != "torch" and len(shapes) > \
                    TENSORS_PER_SIZE and name not in QUICK_MANY_SMALL_COMPILED:
                continue
            candidates = bench.small_candidates(name, shapes) if small \
                else bench.candidates(name, shapes)
            measure(candidates, rounds, warmup=3, min_batch_s=min_batch_s)
            for c in candidates:
                record = {"case": label, "n_params": n_params,
                          "n_tensors": len(shapes), "optimizer": name,
                          "impl": c.impl,
                          "state_bytes_per_param": c.state_bytes / n_params,
                          "workspace_bytes_per_param":
                              c.workspace_bytes / n_params}
                record.update(summary(c))
                result["steps"].append(record)
            line = "  ".join(f"{c.impl}={summary(c)['median_ms']:.3f}"
                             for c in candidates)
            print(f"  {name:12s} {line}", flush=True)
            if small:
                print("  " + " " * 12 + " " + _small_ratios(candidates),
                      flush=True)
            del candidates
    if fit:
        result["fit"] = fit_benchmark(bench, quick, rounds)
    result["machine"]["load_after"] = _load()
    return result


def _versions(backend):
    import keras

    out = {"keras": keras.__version__}
    if backend == "torch":
        import torch

        out["torch"] = torch.__version__
    elif backend == "jax":
        import jax
        import optax

        out["jax"] = jax.__version__
        out["optax"] = optax.__version__
    else:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", required=True,
                        choices=["torch", "jax", "tensorflow"])
    parser.add_argument("--quick", action="store_true",
                        help="sizes up to 1e6 and fewer rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-batch-ms", type=float, default=None)
    parser.add_argument("--optimizers", nargs="*", default=None,
                        choices=list(OPTIMIZERS))
    parser.add_argument("--no-fit", action="store_true")
    parser.add_argument("--small", action="store_true",
                        help="torch: 1e4 and 1e5 parameters in 10 tensors, "
                        "ours (apply and the lean path) against "
                        "torch.optim's foreach and fused variants only "
                        "(implies --no-fit)")
    parser.add_argument("--out", default=None,
                        help="JSON file for the results")
    args = parser.parse_args(argv)
    _configure_threads(args.backend, args.threads)
    result = run(args.backend, quick=args.quick, rounds=args.rounds,
                 optimizers=args.optimizers, threads=args.threads,
                 min_batch_ms=args.min_batch_ms,
                 fit=not (args.no_fit or args.small), small=args.small)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    else:
        json.dump(result, sys.stdout, indent=1)
        print()


if __name__ == "__main__":
    main()
