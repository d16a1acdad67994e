"""Operators and memory traffic of one optimizer step on the torch backend.

Issue 19 asks, where a speed target stays out of reach, for the work each
side does per step. This script runs three steps of the zoo (``apply``, the
path ``fit`` takes) and of each torch reference of ``benchmarks.step_time``'s
table, then records the next step under a ``TorchDispatchMode`` and prints,
per implementation:

* ``ops``: ATen operators called from Python (a foreach kernel is one: its
  per-tensor work on the CPU runs inside it);
* ``traffic``: the elements of parameter-sized tensors each operator reads
  and writes, divided by the parameter count: full passes over memory, the
  cost that dominates at 1e6 parameters. Reads: each distinct tensor
  argument once (``x * x`` reads ``x`` once). Writes: each argument the
  operator's schema marks as written (an in-place target, a foreach list
  updated in place, an ``out=`` tensor), else the result. An ``out=``
  tensor and the target of ``copy_``, ``zero_`` and ``fill_`` are written,
  not read. A boolean mask counts as many elements as a float tensor;
* ``full-size ops``: the operators that touch such tensors.

Nothing is timed: the counts are exact and do not depend on the machine's
load. ::

    python -m benchmarks.kernel_count --optimizers lamb adamp --size 1e5
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

os.environ.setdefault("KERAS_BACKEND", "torch")


#: in-place operators that write their target without reading it
_OVERWRITES = frozenset({"copy_", "_foreach_copy_", "zero_", "_foreach_zero_",
                         "fill_", "_foreach_fill_"})


def _counter(threshold):
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = 0
            self.full_ops = 0
            self.elements = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            self.ops += 1
            reads, writes = {}, []

            def tensors(value):
                if isinstance(value, torch.Tensor):
                    if value.numel() >= threshold:
                        yield value
                elif isinstance(value, (list, tuple)):
                    for v in value:
                        yield from tensors(v)

            def read(value):  # a tensor read twice (x * x) is one pass
                for t in tensors(value):
                    reads[id(t)] = t.numel()

            def write(value):
                writes.extend(t.numel() for t in tensors(value))

            # reads: every tensor argument, except the ``out=`` ones; writes:
            # every argument the schema marks as written (an in-place
            # target, foreach lists included, or ``out=``), else the result
            schema = func._schema.arguments
            written = [a.alias_info is not None and a.alias_info.is_write
                       for a in schema]
            by_name = {a.name: w for a, w in zip(schema, written)}
            overwrites = func.overloadpacket.__name__ in _OVERWRITES
            for a, w, v in zip(schema, written, args):
                if not (w and overwrites):
                    read(v)
                if w:
                    write(v)
            for key, v in kwargs.items():
                if not (by_name.get(key) and (key == "out" or overwrites)):
                    read(v)
                if by_name.get(key):
                    write(v)
            if not any(written):
                write(out)
            touched = sum(reads.values()) + sum(writes)
            if touched:
                self.full_ops += 1
                self.elements += touched
            return out

    return Count


def count(name, size, tensors=10):
    """{impl: (ops, full-size ops, traffic)} for one optimizer."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as step_time (the counts do not depend on it)
    try:
        return _count(name, size, tensors)
    finally:
        torch.set_num_threads(threads)


def _count(name, size, tensors):
    import torch

    from benchmarks import step_time

    shapes = step_time.as_matrices([(size // tensors,)] * tensors)
    n_params = sum(int(torch.tensor(s).prod()) for s in shapes)
    bench = step_time.TorchBench()
    candidates = [bench.keras_candidate("zoo", step_time._zoo(name), shapes)]
    for peer in step_time.OPTIMIZERS[name].torch:
        c = bench.torch_candidate(peer, shapes)
        if c is not None:
            candidates.append(c)
    threshold = min(int(torch.tensor(s).prod()) for s in shapes)
    out = {}
    for c in candidates:
        for _ in range(3):
            c.step()
        mode = _counter(threshold)()
        with torch.no_grad(), mode:
            c.step()
        out[c.impl] = (mode.ops, mode.full_ops,
                       round(mode.elements / n_params, 2))
    return out


def main(argv=None):
    from benchmarks import step_time

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizers", nargs="*",
                        default=list(step_time.WAVE2))
    parser.add_argument("--size", type=float, default=1e5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    results = {}
    print(f"{'optimizer':18s} {'implementation':34s} {'ops':>5s} "
          f"{'full-size ops':>13s} {'traffic':>8s}")
    for name in args.optimizers:
        results[name] = count(name, int(args.size))
        for impl, (ops, full, traffic) in results[name].items():
            print(f"{name:18s} {impl:34s} {ops:5d} {full:13d} "
                  f"{traffic:8.2f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"size": args.size, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
