"""Max deviation of keras_optzoo.schedules from torch.optim.lr_scheduler.

Runs every case of tests/_sched_helpers.py (the cases the tests check) inside
a compiled function on the active Keras backend -- jax.jit with an int32
step, tf.function(jit_compile=True) with an int64 step, torch eager -- and
prints per schedule class the largest relative and absolute deviation from
torch's float64 sequence (including the momentum of CyclicLR / OneCycleLR
against torch's SGD ``momentum`` and Adam ``betas[0]``), and the worst case.

    KERAS_BACKEND=jax python benchmarks/schedule_deviation.py
    python benchmarks/schedule_deviation.py --all-backends   # one process each
"""

import argparse
import collections
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("jax", "tensorflow", "torch")


def _rows():
    import numpy as np

    import _sched_helpers as H

    worst = collections.OrderedDict()

    def record(name, case_id, ours, expected):
        known = ~np.isnan(expected)
        diff = np.abs(ours[known] - expected[known])
        diff = np.where(diff <= H.ATOL, 0.0, diff)
        rel = H.relative_deviation(ours, expected)
        row = worst.setdefault(name, [0, 0.0, 0.0, ""])
        row[0] += 1
        if rel >= row[1]:
            row[1], row[3] = rel, case_id
        row[2] = max(row[2], float(diff.max()) if diff.size else 0.0)

    for case in H.CASES:
        _, ours, expected = H.run_case(case)
        record(type(case.ours()).__name__, case.id, ours, expected)
    for case_id, make, torch_make, steps in H.MOMENTUM_CASES:
        for optimizer in ("sgd", "adam"):
            _, momentums = H.torch_sequence(
                torch_make, steps, optimizer=optimizer
            )
            ours = H.evaluate_compiled(
                make().momentum_schedule(), range(steps)
            )
            record("CycleMomentum", f"{case_id}/{optimizer}", ours, momentums)
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--all-backends",
        action="store_true",
        help="run once per backend (jax, tensorflow, torch), sequentially",
    )
    args = parser.parse_args()
    if args.all_backends:
        for backend in BACKENDS:
            env = dict(os.environ, KERAS_BACKEND=backend)
            subprocess.run([sys.executable, __file__], env=env, check=True)
        return

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    sys.path.insert(0, ROOT)
    import torch  # noqa: F401  (before TensorFlow, see tests/conftest.py)

    import keras

    rows = _rows()
    print(f"\nbackend: {keras.backend.backend()}  (rtol used by the tests: "
          "1e-6)")
    print(f"{'schedule':28s} {'cases':>5s} {'max rel dev':>12s} "
          f"{'max abs dev':>12s}  worst case")
    for name, (count, rel, absolute, case_id) in rows.items():
        print(f"{name:28s} {count:5d} {rel:12.2e} {absolute:12.2e}  "
              f"{case_id}")


if __name__ == "__main__":
    main()
