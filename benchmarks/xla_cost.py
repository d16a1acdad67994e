"""What XLA compiles for one optimizer step on JAX: the zoo against optax.

The JAX counterpart of ``benchmarks/kernel_count.py``. For each optimizer of
``benchmarks.step_time``'s second-wave table that optax has, this compiles
one step the way ``step_time`` times it (``stateless_apply`` / optax's
``update`` plus ``apply_updates`` under ``jax.jit``, the variables and the
state donated) and prints, from the compiled executable:

* ``traffic``: XLA's own cost analysis, bytes accessed divided by the
  parameters' bytes (full passes over memory);
* ``flops``: floating-point operations per parameter;
* ``fusions``: XLA kernels in the step;
* ``copies``: copies of parameter-sized buffers XLA inserted (a donated
  buffer still read after its new value is written is copied first; each
  copy is a read and a write the cost analysis leaves out).

Nothing is timed: the numbers are the compiler's and do not depend on the
machine's load. ::

    python -m benchmarks.xla_cost --optimizers rprop adan --size 1e5
"""

import argparse
import json
import os
import re
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

os.environ.setdefault("KERAS_BACKEND", "jax")


def _describe(compiled, n_params, smallest):
    cost = compiled.cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    text = compiled.as_text()
    entry = text[text.index("ENTRY"):]
    fusions = len(re.findall(r"= \S+ fusion\(", entry))
    copies = 0
    for match in re.finditer(r"= f\d+\[([\d,]*)\]\S* copy\(", entry):
        dims = [int(d) for d in match.group(1).split(",") if d]
        size = 1
        for d in dims:
            size *= d
        copies += size >= smallest
    return {"traffic": round(cost.get("bytes accessed", 0.0)
                             / (4 * n_params), 2),
            "flops": round(cost.get("flops", 0.0) / n_params, 2),
            "fusions": fusions, "copies": copies}


def count(name, size, tensors=10):
    """{impl: {traffic, flops, fusions, copies}} for one optimizer, the
    steps ``step_time`` times (``jax_zoo_step``, ``jax_optax_step``)."""
    import numpy as np

    from benchmarks import step_time

    shapes = step_time.as_matrices([(size // tensors,)] * tensors)
    n_params = sum(int(np.prod(s)) for s in shapes)
    smallest = min(int(np.prod(s)) for s in shapes)
    fn, args = step_time.jax_zoo_step(step_time._zoo(name), shapes)
    out = {"zoo": _describe(fn.lower(*args).compile(), n_params, smallest)}
    made = step_time.jax_optax_step(name, shapes)
    if made is not None:
        impl, fn, args = made
        out[impl] = _describe(fn.lower(*args).compile(), n_params, smallest)
    return out

def main(argv=None):
    from benchmarks import step_time

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--optimizers", nargs="*", default=[
        n for n in step_time.WAVE2 if step_time.OPTIMIZERS[n].optax])
    parser.add_argument("--size", type=float, default=1e5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import keras

    assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"
    results = {}
    print(f"{'optimizer':12s} {'implementation':16s} {'traffic':>8s} "
          f"{'flops':>7s} {'fusions':>8s} {'copies':>7s}")
    for name in args.optimizers:
        results[name] = count(name, int(args.size))
        for impl, r in results[name].items():
            print(f"{name:12s} {impl:16s} {r['traffic']:8.2f} "
                  f"{r['flops']:7.1f} {r['fusions']:8d} {r['copies']:7d}",
                  flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"size": args.size, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
