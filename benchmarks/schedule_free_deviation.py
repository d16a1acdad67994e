"""Max deviation of the schedule-free optimizers from schedulefree 1.4.1.

    KERAS_BACKEND=jax python -m benchmarks.schedule_free_deviation
    python -m benchmarks.schedule_free_deviation --all-backends

For every config of the three specs (tests/spec_db/schedule_free.py): the
60-step trajectory of tests/harness.py (four tensors, the learning rate
changed at step 30), eagerly and compiled (JAX jit / TF XLA; torch runs
eagerly), against the reference stepped in train mode. Printed, as
max |θ_ours − θ_ref| / max |θ_ref − θ₀| over the configs:

* ``y``: the model's variables after the run (train mode);
* ``x``: after ``eval()`` on both sides (the evaluation point);
* ``ref vs float64``: the reference's own float32 distance from the NumPy
  float64 reference (x/z form), the scale of float32 rounding here.

Every config runs in every mode (``--first-config`` keeps eager JAX/TF to
each optimizer's first config, as the test suite does).
"""

import argparse
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = ("schedulefree_adamw", "schedulefree_sgd", "schedulefree_radam")


def _relative(a, b, init):
    import numpy as np

    scale = max(float(np.max(np.abs(np.asarray(r, np.float64) - i)))
                for r, i in zip(b, init))
    return max(float(np.max(np.abs(np.asarray(o, np.float64) - r)))
               for o, r in zip(a, b)) / scale


def measure(first_config_only=False):
    sys.path.insert(0, str(ROOT / "tests"))
    import keras
    import torch

    import harness
    import specs

    rows = {}
    for name in NAMES:
        spec = specs.SPECS_BY_NAME[name]
        default = spec.cls().get_config()["learning_rate"]
        out = {}
        for config in spec.configs:
            init, grads = harness.problem(config)
            lrs = harness.lr_schedule_for(config.kwargs, default)
            params = [torch.tensor(p, requires_grad=True) for p in init]
            ref = specs.make_torch(spec, params, config.kwargs)
            for t, g in enumerate(grads):
                for group in ref.param_groups:
                    group["lr"] = lrs[t]
                for p, gi in zip(params, g):
                    p.grad = torch.tensor(gi)
                ref.step()
            ref_y = [p.detach().numpy().copy() for p in params]
            ref.eval()
            ref_x = [p.detach().numpy().copy() for p in params]
            numpy_ref = spec.reference(init, **config.kwargs)
            harness.run_numpy(numpy_ref, init, grads, lrs)
            gap = max(_relative(ref_y, numpy_ref.params, init),
                      _relative(ref_x, numpy_ref.eval_params(), init))
            out["ref vs float64"] = max(out.get("ref vs float64", 0.0), gap)
            for mode in harness.modes():
                if first_config_only and mode == "eager" and \
                        harness.backend() != "torch" and \
                        config is not spec.configs[0]:
                    continue
                opt = spec.cls(**config.kwargs)
                stepper = harness.Stepper(opt, init, mode)
                for t, g in enumerate(grads):
                    lr = lrs[t] if t == 0 or lrs[t] != lrs[t - 1] else None
                    stepper.step(g, lr)
                ours_y = stepper.params()
                stepper.sync()
                opt.eval()
                ours_x = [keras.ops.convert_to_numpy(v)
                          for v in stepper.vars]
                for what, a, b in (("y", ours_y, ref_y),
                                   ("x", ours_x, ref_x)):
                    key = f"{what} {mode}"
                    out[key] = max(out.get(key, 0.0),
                                   _relative(a, b, init))
        rows[name] = (spec.reference_name, out)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--all-backends", action="store_true")
    parser.add_argument("--first-config", action="store_true")
    args = parser.parse_args()
    if args.all_backends:
        for backend in ("tensorflow", "jax", "torch"):
            env = dict(os.environ, KERAS_BACKEND=backend,
                       TF_CPP_MIN_LOG_LEVEL="2")
            subprocess.run([sys.executable, "-m",
                            "benchmarks.schedule_free_deviation"]
                           + (["--first-config"] if args.first_config
                              else []),
                           env=env, check=True, cwd=ROOT)
        return
    import keras

    rows = measure(args.first_config)
    keys = sorted({k for _, out in rows.values() for k in out
                   if k != "ref vs float64"},
                  key=lambda k: (k.split()[1] != "eager", k))
    print(f"\nbackend: {keras.backend.backend()} (max over every config; "
          "relative to the distance travelled)")
    print("| optimizer | " + " | ".join(keys) + " | ref vs float64 |")
    print("|---|" + "---|" * (len(keys) + 1))
    for name, (_, out) in rows.items():
        cells = " | ".join(f"{out[k]:.2e}" for k in keys)
        print(f"| {name} | {cells} | {out['ref vs float64']:.2e} |")


if __name__ == "__main__":
    main()
