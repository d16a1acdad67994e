"""Max deviation of keras_optzoo's timm schedulers from timm.

Runs every case of tests/_timm_sched_cases.py (the cases the tests check:
grids through several cycles, their boundaries and far steps up to
2**31 - 1, noise included) in one compiled call per case on the active Keras
backend -- jax.jit with int32 steps, tf.function(jit_compile=True) with int64
steps, torch eager -- and prints per scheduler class the largest absolute
deviation from timm's float64 rates relative to the grid's peak rate (the
issue's criterion), the largest relative deviation (differences below the
smallest normal float32 ignored), and the worst case.

    KERAS_BACKEND=jax python benchmarks/timm_schedule_deviation.py
    # one process per backend:
    python benchmarks/timm_schedule_deviation.py --all-backends
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
    import _timm_sched_cases as C

    worst = collections.OrderedDict()
    for case in C.CASES:
        _, ours, expected = C.run_case(case)
        peak, rel = C.deviations(ours, expected)
        row = worst.setdefault(type(case.ours()).__name__,
                               [0, 0.0, 0.0, ""])
        row[0] += 1
        if peak >= row[1]:
            row[1], row[3] = peak, case.id
        row[2] = max(row[2], rel)
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
    print(f"\nbackend: {keras.backend.backend()}  (tests: rtol 1e-6, "
          "so also 1e-6 of the peak)")
    print(f"{'scheduler':22s} {'cases':>5s} {'abs dev/peak':>12s} "
          f"{'max rel dev':>12s}  worst case")
    for name, (count, peak, rel, case_id) in rows.items():
        print(f"{name:22s} {count:5d} {peak:12.2e} {rel:12.2e}  {case_id}")


if __name__ == "__main__":
    main()
