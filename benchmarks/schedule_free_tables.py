"""Markdown tables of the schedule-free step-time runs.

    python -m benchmarks.schedule_free_tables \
        --out benchmarks/results/schedule_free.md

Reads ``results/step_time_schedule_free_<backend>.json``, written by::

    python -m benchmarks.step_time --backend <backend> --quick --no-fit \
        --optimizers schedulefree_adamw schedulefree_sgd schedulefree_radam \
        --sizes 1e4 1e5 1e6 \
        --out benchmarks/results/step_time_schedule_free_<backend>.json

and prints, per backend and case, the zoo's median step time and each
peer's, with the ratio zoo / fastest peer: schedulefree 1.4.1's for-loop
and foreach variants on torch, ``optax.contrib`` and Keras's
``ScheduleFreeAdamW`` (another algorithm, the same cost) on JAX, Keras's on
TensorFlow.
"""

import argparse
import json
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BACKENDS = ("torch", "jax", "tensorflow")
ZOO = "zoo"


def load(backend):
    path = os.path.join(HERE, f"step_time_schedule_free_{backend}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def table(result):
    rows = {}
    for r in result["steps"]:
        key = (r["case"], r["optimizer"])
        rows.setdefault(key, {})[r["impl"]] = r["median_ms"]
    lines = ["| case | optimizer | zoo (ms) | peers (ms) | zoo / fastest "
             "peer |", "|---|---|---|---|---|"]
    for (case, name), impls in rows.items():
        if ZOO not in impls:
            continue
        peers = {k: v for k, v in impls.items()
                 if not k.startswith("zoo")}
        text = ", ".join(f"{k} {v:.3g}" for k, v in peers.items()) or "—"
        ratio = (f"{impls[ZOO] / min(peers.values()):.2f}×" if peers
                 else "—")
        lines.append(f"| {case} | {name} | {impls[ZOO]:.3g} | {text} | "
                     f"{ratio} |")
    return "\n".join(lines)


def render():
    out = []
    for backend in BACKENDS:
        result = load(backend)
        if result is None:
            continue
        machine = result.get("machine", {})
        out.append(f"### {backend} (load average before/after: "
                   f"{machine.get('load_before', ['?'])[0]:.1f} / "
                   f"{machine.get('load_after', ['?'])[0]:.1f} on "
                   f"{machine.get('cpus', '?')} CPUs; commit "
                   f"{(result.get('source') or {}).get('commit', '?')})\n")
        out.append(table(result) + "\n")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    text = render()
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Schedule-free step time\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
