"""Prints the max deviation of every zoo optimizer from torch.optim.

For each spec and config in tests/specs.py: a 60-step trajectory over four
tensors (with the mid-run learning-rate change), run eagerly and compiled
where the backend compiles, compared with torch.optim in float32. The number
is max |θ_ours − θ_torch| / max |θ_torch − θ₀| (the tests require ≤ 1e-5).

    KERAS_BACKEND=jax python benchmarks/optimizer_deviation.py
    python benchmarks/optimizer_deviation.py --all-backends
"""

import argparse
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def measure():
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np

    import harness
    import specs

    rows = {}
    for spec in specs.SPECS:
        default = spec.cls().get_config()["learning_rate"]
        for config in spec.configs:
            init, grads = harness.problem(config)
            lrs = harness.lr_schedule_for(config.kwargs, default)
            theirs = harness.run_torch(
                lambda ps: specs.make_torch(spec, ps, config.kwargs), init,
                grads, lrs)
            scale = max(np.max(np.abs(t - i)) for t, i in zip(theirs, init))
            for mode in harness.modes():
                ours = harness.run_ours(spec.cls(**config.kwargs), init,
                                        grads, lrs, mode)
                dev = max(np.max(np.abs(o - t)) for o, t in zip(ours, theirs))
                key = spec.name
                rows[key] = max(rows.get(key, 0.0), float(dev / scale))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--all-backends", action="store_true")
    args = parser.parse_args()
    if args.all_backends:
        for backend in ("tensorflow", "jax", "torch"):
            env = dict(os.environ, KERAS_BACKEND=backend,
                       TF_CPP_MIN_LOG_LEVEL="2")
            subprocess.run([sys.executable, __file__], env=env, check=True)
        return
    import keras

    rows = measure()
    print(f"\nbackend: {keras.backend.backend()} (max over configs and "
          "execution modes; relative to the distance travelled)")
    print("| optimizer | max relative deviation from torch.optim |")
    print("|---|---|")
    for name, dev in rows.items():
        print(f"| {name} | {dev:.2e} |")


if __name__ == "__main__":
    main()
