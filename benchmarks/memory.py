"""Optimizer memory: state bytes per parameter and peak step memory.

    python -m benchmarks.memory --backend torch --out results/memory_torch.json
    python -m benchmarks.memory --backend jax --out results/memory_jax.json

For every registered optimizer (``keras_optzoo.registry.classes()``) with
the arguments ``step_time.OPTIMIZERS`` benchmarks it with (the defaults,
but momentum 0.9 for Lars and SGDP, and Lars's weight decay 1e-4), built on
a small model's worth of float32 tensors (a 512x512 matrix, a 512 vector, a
10x512 matrix, a 10 vector): the bytes of the
optimizer's variables per parameter, not counting the iteration counter and
the learning rate (Keras bookkeeping of a few bytes). Next to it, the
state bytes per parameter after one step of the optimizer's torch-side
reference in ``step_time.OPTIMIZERS`` (torch.optim, timm, lion-pytorch,
adabelief-pytorch, pytorch-optimizer; torch backend) and optax's state
bytes (JAX backend) where they have the optimizer.

Peak step memory: on the JAX backend, the temporary bytes XLA allocates for
the compiled step (``compile().memory_analysis()``), ours against optax's;
on the torch backend, the scratch workspace the multi-tensor path keeps per
parameter (and, on CUDA, ``torch.cuda.max_memory_allocated`` during a step
minus the memory before it, ours against torch.optim's). Runs in well under
a minute (``--quick`` is accepted for symmetry with the other scripts).

Also the state bytes of one 1024x1024 kernel (``kernel_1024``): Adafactor
keeps a row and a column vector where Adam keeps two full copies.
"""

import argparse
import math
import os
import platform

from benchmarks import write_json

SHAPES = [(512, 512), (512,), (10, 512), (10,)]


def _entry(name):
    """The registry class's entry in step_time's table (its benchmark
    arguments and references), or None."""
    from benchmarks.step_time import OPTIMIZERS
    from keras_optzoo import registry

    # the class name lower-cased ("adamw"), else its registry name
    # ("schedulefree_adamw")
    keys = [name.lower()] + [e.name for e in registry.entries()
                             if e.cls.__name__ == name and not e.preset]
    return next((OPTIMIZERS[k] for k in keys if k in OPTIMIZERS), None)


def _problem():
    import numpy as np

    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s).astype("float32") for s in SHAPES]
    grads = [1e-3 * rng.standard_normal(s).astype("float32")
             for s in SHAPES]
    return params, grads


def _state_bytes(opt):
    import numpy as np

    skip = {id(opt._iterations)}
    lr = getattr(opt, "_learning_rate", None)
    if lr is not None:
        skip.add(id(lr))
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize
               for v in opt.variables if id(v) not in skip)


def _torch_native(entry, params, grads):
    """(label, state bytes) of the entry's first torch-side reference after
    one step, without its step counters; (None, None) without one."""
    from benchmarks.step_time import torch_reference

    if entry is None or not entry.torch:
        return None, None
    peer = entry.torch[0]
    opt, _ = torch_reference(peer, params, grads)
    if opt is None:
        return None, None
    return peer.impl, _torch_state_bytes(opt)


def _torch_state_bytes(opt):
    """Bytes of a torch optimizer's state tensors, its step counters left
    out."""
    import torch

    return sum(t.numel() * t.element_size()
               for s in opt.state.values() for k, t in s.items()
               if torch.is_tensor(t) and k != "step")


def _optax_native(entry, params, grads):
    import jax
    import optax

    if entry is None or entry.optax is None:
        return None, None
    _, tx = entry.optax()
    ps = [jax.numpy.asarray(p) for p in params]
    gs = [jax.numpy.asarray(g) for g in grads]
    state = tx.init(ps)
    nbytes = sum(leaf.nbytes for leaf in jax.tree_util.tree_leaves(state)
                 if getattr(leaf, "ndim", 0) > 0)

    def update(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    analysis = jax.jit(update).lower(ps, state, gs).compile() \
        .memory_analysis()
    return nbytes, getattr(analysis, "temp_size_in_bytes", None)


def _kernel_1024(backend):
    """State bytes for one 1024x1024 float32 kernel (issue 10: Adafactor's
    factored second moment is a row and a column vector): the zoo's
    Adafactor and Adam, Keras's Adafactor, and on torch torch.optim's
    Adafactor after one step (its ``step`` counter left out)."""
    import keras
    import numpy as np

    import keras_optzoo as oz

    shape = (1024, 1024)
    rng = np.random.default_rng(0)
    param = rng.standard_normal(shape).astype("float32")
    grad = 1e-3 * rng.standard_normal(shape).astype("float32")
    out = {}
    for label, make in (("zoo Adafactor", oz.Adafactor),
                        ("zoo Adam", oz.Adam),
                        ("keras Adafactor", keras.optimizers.Adafactor)):
        opt = make()
        opt.build([keras.Variable(param)])
        out[label] = _state_bytes(opt)
    if backend == "torch":
        import torch

        p = torch.nn.Parameter(torch.from_numpy(param.copy()))
        opt = torch.optim.Adafactor([p])
        p.grad = torch.from_numpy(grad)
        opt.step()
        out["torch.optim.Adafactor"] = _torch_state_bytes(opt)
    print("  1024x1024 kernel, state bytes: " + ", ".join(
        f"{k} {v:,}" for k, v in out.items()), flush=True)
    return out


def run(backend):
    import keras

    import keras_optzoo as oz  # noqa: F401 - registers the optimizers
    from keras_optzoo import registry

    params, grads = _problem()
    n = sum(p.size for p in params)
    records = []
    for cls in registry.classes():
        name = cls.__name__
        entry = _entry(name)
        kwargs = entry.zoo_kwargs if entry is not None else {}
        try:
            opt = cls(**kwargs)
        except Exception as error:  # noqa: BLE001 - needs arguments
            print(f"  {name}: skipped ({error})", flush=True)
            continue
        variables = [keras.Variable(p) for p in params]
        try:
            opt.build(variables)
        except Exception as error:  # noqa: BLE001
            print(f"  {name}: cannot build ({error})", flush=True)
            continue
        record = {"optimizer": name, "n_params": int(n), "kwargs": kwargs,
                  "state_bytes_per_param": _state_bytes(opt) / n}
        if backend == "torch":
            import torch

            label, nbytes = _torch_native(entry, params, grads)
            record["torch_reference"] = label
            record["torch_state_bytes_per_param"] = \
                None if nbytes is None else nbytes / n
            tensors = [torch.from_numpy(g) for g in grads]
            try:
                with torch.no_grad():
                    opt.apply(tensors, variables)
                record["workspace_bytes_per_param"] = \
                    opt._multi_tensor.workspace_bytes() / n
                record["update_path"] = opt.update_path
            except Exception as error:  # noqa: BLE001 - closure optimizers
                record["note"] = f"apply: {type(error).__name__}"
        elif backend == "jax":
            import jax

            nbytes, temp = _optax_native(entry, params, grads)
            record["optax_state_bytes_per_param"] = \
                None if nbytes is None else nbytes / n
            record["optax_step_temp_bytes_per_param"] = \
                None if temp is None else temp / n
            try:
                analysis = jax.jit(opt.stateless_apply).lower(
                    [v.value for v in opt.variables],
                    [jax.numpy.asarray(g) for g in grads],
                    [v.value for v in variables]).compile().memory_analysis()
                record["step_temp_bytes_per_param"] = \
                    analysis.temp_size_in_bytes / n
            except Exception as error:  # noqa: BLE001
                record["note"] = f"stateless_apply: {type(error).__name__}"
        records.append(record)
        print("  " + "  ".join(f"{k}={v:.2f}" if isinstance(v, float)
                               else f"{k}={v}" for k, v in record.items()
                               if k != "n_params"), flush=True)
    return {"backend": backend,
            "kernel_1024": _kernel_1024(backend),
            "machine": {"cpus": os.cpu_count(),
                        "platform": platform.platform(),
                        "load": os.getloadavg()},
            "shapes": SHAPES, "records": records}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", required=True,
                        choices=["torch", "jax", "tensorflow"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = run(args.backend)
    write_json(result, args.out)


if __name__ == "__main__":
    main()
