"""Max deviation of keras_optzoo's Hugging Face schedules from transformers.

Runs every case of tests/_hf_sched_cases.py (the cases the tests check:
whole grids through several times each schedule's length, its phase
boundaries and far steps up to 2**31 - 1) in one compiled call per case on
the active Keras backend -- jax.jit with int32 steps,
tf.function(jit_compile=True) with int64 steps, torch eager -- and prints per
schedule class the largest relative deviation from transformers' float64
values (differences below the smallest normal float32 ignored), the largest
absolute deviation relative to the schedule's peak, and the worst case. The
cosine cases whose ``2 * num_cycles`` is not an integer ("2c not int") get
a row of their own: their phase is a float32 number, not an exact integer
ratio, so next to the cosine's zeros only the absolute deviation is small.
with_warmup is compared with torch's SequentialLR in the tests, not here;
Noam with its float64 closed form.

    KERAS_BACKEND=jax python benchmarks/hf_schedule_deviation.py
    # one process per backend:
    python benchmarks/hf_schedule_deviation.py --all-backends
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

    import _hf_sched_cases as C

    worst = collections.OrderedDict()
    for case in C.CASES:
        _, ours, expected = C.run_case(case)
        rel = C.relative_deviation(ours, expected)
        peak = float(np.max(np.abs(expected)))
        absolute = float(np.max(np.abs(ours - expected))) / peak
        name = type(case.ours()).__name__
        if case.atol != C.ATOL:  # a float32 phase, see the case list
            name += " (2c not int)"
        row = worst.setdefault(name, [0, 0.0, 0.0, ""])
        row[0] += 1
        if rel >= row[1]:
            row[1], row[3] = rel, case.id
        row[2] = max(row[2], absolute)
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
    print(f"\nbackend: {keras.backend.backend()}  (tests: rtol 1e-6; "
          "3e-7 x peak absolute for 2*num_cycles not an integer)")
    print(f"{'schedule':46s} {'cases':>5s} {'max rel dev':>12s} "
          f"{'abs dev/peak':>12s}  worst case")
    for name, (count, rel, absolute, case_id) in rows.items():
        print(f"{name:46s} {count:5d} {rel:12.2e} {absolute:12.2e}  "
              f"{case_id}")


if __name__ == "__main__":
    main()
