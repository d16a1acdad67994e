"""Where the time of one optimizer step goes on the torch backend.

Issue 14 asks for the per-step breakdown before and after the speed work.
This script runs ``apply`` (the way ``fit`` calls it) under ``cProfile``
for a model of 1e4 or 1e5 parameters in 10 tensors and splits each step
into:

* ``bookkeeping``: everything outside the update (the total minus
  ``_backend_update_step``; ~0 once the lean step is taken);
* ``scalar math``: the step's scalars (bias corrections, ...) replayed or
  traced (``Replay.run`` / ``_trace``);
* ``kernels``: time inside ``torch._foreach_*`` and fused kernels;
* ``other``: the rest (grouping, the compiled program's Python, ...);

next to ``torch.optim``'s foreach (and fused, where torch has it)
``step()`` profiled the same way. Profiling adds overhead to every Python
call, so the absolute numbers are larger than ``step_time.py``'s; the
split is what this shows. Run it against any checkout (``--repo``) to get
the "before" column::

    python -m benchmarks.profile_step --optimizers sgd_momentum nadam radam
    git worktree add /tmp/before <commit>
    python benchmarks/profile_step.py --repo /tmp/before
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

OPTIMIZERS = {
    # name: (zoo class, zoo kwargs, torch.optim class, torch kwargs, fused?)
    "sgd_momentum": ("SGD", {"momentum": 0.9}, "SGD", {"momentum": 0.9},
                     True),
    "rmsprop": ("RMSprop", {}, "RMSprop", {}, False),
    "adadelta": ("Adadelta", {}, "Adadelta", {}, False),
    "adamax": ("Adamax", {}, "Adamax", {}, False),
    "nadam": ("NAdam", {}, "NAdam", {}, False),
    "radam": ("RAdam", {}, "RAdam", {}, False),
    "adam": ("Adam", {}, "Adam", {}, True),
}


def _per_step_us(stats, steps, pick):
    """Sum of cumulative (or own) time of the functions ``pick`` selects."""
    total = 0.0
    for (filename, _, name), (_, _, tottime, cumtime, _) in \
            stats.stats.items():
        kind = pick(filename, name)
        if kind == "cum":
            total += cumtime
        elif kind == "tot":
            total += tottime
    return 1e6 * total / steps


def _kernels(filename, name):
    if filename == "~" and ("_foreach_" in name or "_fused_" in name):
        return "tot"
    return None


def profile(name, n_params, steps, warmup=50):
    import torch

    import keras
    import keras_optzoo as oz

    zoo_cls, zoo_kwargs, torch_cls, torch_kwargs, fused = OPTIMIZERS[name]
    shapes = [(n_params // 10,)] * 10
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=gen) for s in shapes]
    grads = [1e-2 * torch.randn(s, generator=gen) for s in shapes]
    rows = {}

    opt = getattr(oz, zoo_cls)(learning_rate=1e-3, **zoo_kwargs)
    variables = [keras.Variable(x.clone()) for x in init]

    def zoo_step():
        opt.apply(grads, variables)

    impls = [("keras-optzoo apply", zoo_step)]
    for label, flags in (("torch.optim foreach", {"foreach": True}),
                         ("torch.optim fused", {"fused": True})):
        if flags.get("fused") and not fused:
            continue
        params = [x.clone().requires_grad_() for x in init]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        topt = getattr(torch.optim, torch_cls)(params, lr=1e-3,
                                               **torch_kwargs, **flags)
        impls.append((label, topt.step))

    with torch.no_grad():
        for label, step in impls:
            for _ in range(warmup):
                step()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            plain = 1e6 * (time.perf_counter() - start) / steps
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(steps):
                step()
            prof.disable()
            stats = pstats.Stats(prof)
            total = 1e6 * stats.total_tt / steps
            row = {"unprofiled_us": plain,
                   "kernels_us": _per_step_us(stats, steps, _kernels)}
            if label.startswith("keras-optzoo"):
                update = _per_step_us(
                    stats, steps,
                    lambda f, n: "cum" if n == "_backend_update_step"
                    and "keras_optzoo" in f else None)
                scalars = _per_step_us(
                    stats, steps,
                    lambda f, n: "cum" if (("fastpath" in f
                                            or "multi_tensor" in f) and (
                        n in ("_trace",) or (n == "run"
                                             and "replay" in f)))
                    else None)
                row.update({
                    "bookkeeping_us": max(total - update, 0.0),
                    "scalar math_us": scalars,
                    # (a checkout from before these attributes existed:
                    # the first wave's multi-tensor path, no replay)
                    "path": getattr(opt, "update_path", "multi-tensor"),
                    "replayed": getattr(opt._multi_tensor, "replayed", 0)
                    > 0,
                })
            row["profiled_total_us"] = total
            row["other_us"] = total - row["kernels_us"] - row.get(
                "bookkeeping_us", 0.0) - row.get("scalar math_us", 0.0)
            rows[label] = row
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizers", nargs="*",
                        default=list(OPTIMIZERS))
    parser.add_argument("--sizes", nargs="*", type=int,
                        default=[10_000, 100_000])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repo", default=None,
                        help="import keras_optzoo from this checkout")
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = "torch"
    if args.repo:
        sys.path.insert(0, os.path.abspath(args.repo))
    import torch

    torch.set_num_threads(1)
    import keras_optzoo

    print(f"keras_optzoo from {os.path.dirname(keras_optzoo.__file__)}; "
          f"load average {os.getloadavg()[0]:.2f}")
    cols = ("unprofiled_us", "profiled_total_us", "bookkeeping_us",
            "scalar math_us", "kernels_us", "other_us")
    print("| optimizer | size | implementation | "
          + " | ".join(c.replace("_us", " (us)") for c in cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for name in args.optimizers:
        for size in args.sizes:
            for label, row in profile(name, size, args.steps).items():
                cells = " | ".join(
                    f"{row[c]:.0f}" if c in row else "" for c in cols)
                extra = f" ({row['path']})" if "path" in row else ""
                print(f"| {name} | {size:.0e} | {label}{extra} | {cells} |")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
