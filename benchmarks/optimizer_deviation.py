"""Prints the max deviation of every zoo optimizer from its reference.

For each spec and config in tests/specs.py: a 60-step trajectory over four
tensors (with the mid-run learning-rate change), run eagerly and compiled
where the backend compiles, compared with torch.optim in float32. The number
is max |θ_ours − θ_torch| / max |θ_torch − θ₀| (the tests require ≤ 1e-5).

    KERAS_BACKEND=jax python benchmarks/optimizer_deviation.py
    python benchmarks/optimizer_deviation.py --all-backends
    python benchmarks/optimizer_deviation.py --json-out   # + results file
    python benchmarks/optimizer_deviation.py --only came,hfadafactor

``--json-out``: also writes benchmarks/results/deviation_<backend>.json
(optimizer -> class, reference, max deviation per mode) with the git commit
that measured it; the documentation site's optimizer pages read it.

``--groups``: the same number for param groups, per optimizer: the spec's
``groups`` (tests/specs.py) against the reference with the same param
groups under torch's LambdaLR, 30 steps, eager and compiled, as
tests/test_param_groups.py runs it.
"""

import argparse
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def measure(eager_all=False, only=None):
    """{optimizer: (reference name, {mode: max deviation over configs})}.
    Eager runs on JAX/TF take each optimizer's first config only, as the
    test suite does (eager JAX costs seconds per config in op dispatch),
    unless ``eager_all``; compiled runs and torch take every config."""
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np

    import harness
    import specs

    rows = {}
    for spec in specs.SPECS:
        if only and spec.name not in only:
            continue
        default = spec.cls().get_config()["learning_rate"]
        devs = {}
        for config in spec.configs:
            init, grads = harness.problem(config)
            lrs = harness.lr_schedule_for(config.kwargs, default)
            theirs = harness.run_torch(
                lambda ps: specs.make_torch(spec, ps, config.kwargs), init,
                grads, lrs)
            scale = max(np.max(np.abs(t - i)) for t, i in zip(theirs, init))
            for mode in harness.modes():
                if mode == "eager" and harness.backend() != "torch" and \
                        config is not spec.configs[0] and not eager_all:
                    continue
                ours = harness.run_ours(spec.cls(**config.kwargs), init,
                                        grads, lrs, mode)
                dev = max(np.max(np.abs(o - t)) for o, t in zip(ours, theirs))
                devs[mode] = max(devs.get(mode, 0.0), float(dev / scale))
        rows[spec.name] = (spec.reference_name, devs)
    return rows


def measure_groups(only=None):
    """{optimizer: (reference name, {mode: deviation})} with param groups,
    from tests/test_param_groups.py's runs of both sides."""
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np

    import harness
    import specs
    import test_param_groups as groups_test

    from keras_optzoo.optimizers import ZooOptimizer

    rows = {}
    for spec in specs.SPECS:
        if not issubclass(spec.cls, ZooOptimizer) or (
                only and spec.name not in only):
            continue
        config = spec.configs[0]
        groups = spec.group_overrides
        init, grads = harness.problem(config, steps=groups_test.STEPS)
        theirs = groups_test.run_reference(spec, config, init, grads, groups)
        scale = max(np.max(np.abs(t - i)) for t, i in zip(theirs, init))
        devs = {}
        for mode in harness.modes():
            ours = harness.run_ours(
                groups_test.make_ours(spec, config, groups), init, grads,
                mode=mode)
            dev = max(np.max(np.abs(o - t)) for o, t in zip(ours, theirs))
            devs[mode] = float(dev / scale)
        rows[spec.name] = (spec.reference_name, len(groups) + 1, devs)
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--all-backends", action="store_true")
    parser.add_argument("--groups", action="store_true",
                        help="the deviation with param groups")
    parser.add_argument("--eager-all", action="store_true",
                        help="eager runs of every config on JAX/TF too")
    parser.add_argument("--json-out", action="store_true",
                        help="also write benchmarks/results/"
                             "deviation_<backend>.json")
    parser.add_argument("--only", default="",
                        help="comma-separated optimizer names (default: all)")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}
    if args.all_backends:
        for backend in ("tensorflow", "jax", "torch"):
            env = dict(os.environ, KERAS_BACKEND=backend,
                       TF_CPP_MIN_LOG_LEVEL="2")
            subprocess.run([sys.executable, __file__]
                           + (["--groups"] if args.groups else [])
                           + (["--eager-all"] if args.eager_all else [])
                           + (["--json-out"] if args.json_out else [])
                           + (["--only", args.only] if args.only else []),
                           env=env, check=True)
        return
    import keras

    if args.groups:
        rows = measure_groups(only)
        modes = sorted({m for _, _, devs in rows.values() for m in devs},
                       reverse=True)  # eager, compiled
        print(f"\nbackend: {keras.backend.backend()} (param groups: the "
              "spec's groups + the default group, torch LambdaLR, 30 steps; "
              "relative to the distance travelled)")
        print("| optimizer | reference | groups | "
              + " | ".join(modes) + " |")
        print("|---|---|---|" + "---|" * len(modes))
        for name, (reference, n, devs) in rows.items():
            cells = " | ".join(f"{devs[m]:.2e}" for m in modes)
            print(f"| {name} | {reference} | {n} | {cells} |")
        return
    commit = git_commit()  # before measuring: HEAD may move during the run
    rows = measure(eager_all=args.eager_all, only=only)
    modes = sorted({m for _, devs in rows.values() for m in devs},
                   reverse=True)  # eager, compiled
    print(f"\nbackend: {keras.backend.backend()} (max over configs: every "
          "config compiled and on torch, the first config eager on JAX/TF "
          "unless --eager-all; relative to the distance travelled)")
    print("| optimizer | reference | " + " | ".join(modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for name, (reference, devs) in rows.items():
        cells = " | ".join(f"{devs[m]:.2e}" for m in modes)
        print(f"| {name} | {reference} | {cells} |")
    if args.json_out:
        write_json(rows, commit, eager_all=args.eager_all)


def git_commit():
    """The commit that measured the numbers (+ "-dirty" with local edits)."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no",
                    "keras_optzoo", "tests")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def write_json(rows, commit, eager_all=False):
    """benchmarks/results/deviation_<backend>.json for the docs site."""
    import datetime
    import json

    import keras
    import specs

    classes = {spec.name: spec.cls.__name__ for spec in specs.SPECS}
    backend = keras.backend.backend()
    data = {
        "backend": backend,
        "keras": keras.__version__,
        "commit": commit,
        "date": datetime.date.today().isoformat(),
        "command": ("KERAS_BACKEND=" + backend + " python benchmarks/"
                    "optimizer_deviation.py --json-out"
                    + (" --eager-all" if eager_all else "")),
        "metric": ("max |theta_ours - theta_ref| / max |theta_ref - theta_0| "
                   "over the spec's configs, 60 float32 steps with a "
                   "mid-run learning-rate change"),
        "optimizers": {
            name: {"class": classes[name], "reference": reference,
                   "max_deviation": devs}
            for name, (reference, devs) in rows.items()
        },
    }
    path = ROOT / "benchmarks" / "results" / f"deviation_{backend}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")

if __name__ == "__main__":
    main()
