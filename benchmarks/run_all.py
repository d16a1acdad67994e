"""Runs the step-time benchmark on every backend and writes the report.

    python -m benchmarks.run_all --quick          # a few minutes
    python -m benchmarks.run_all                  # sizes up to 3e7
    python -m benchmarks.run_all --report-only    # re-render saved JSON
    python -m benchmarks.run_all --wave2          # second wave, ~15 min

Each backend runs in its own subprocess, one after the other (they would
compete for the same cores otherwise). The JSON of each lands in
``benchmarks/results/step_time_<backend>.json``; the merged report in
``benchmarks/results/step_time.md`` and ``step_time.png``. With ``--wave2``:
``step_time_wave2_<backend>.json``, rendered by ``readme_tables`` into
``benchmarks/results/tables.md``.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys

from benchmarks.step_time import OPTIMIZERS
from benchmarks.step_time import ZOO_IMPLS

BACKENDS = ("torch", "jax", "tensorflow")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
#: column order of the per-backend tables
IMPL_ORDER = ("zoo", "zoo (foreach)", "zoo (per-variable)", "keras",
              "torch.optim (for-loop)", "torch.optim (foreach)",
              "torch.optim (fused)", "optax")


def _json_path(backend, wave2=False):
    name = "step_time_wave2" if wave2 else "step_time"
    return os.path.join(RESULTS, f"{name}_{backend}.json")


def run_backends(backends, extra, wave2=False):
    for backend in backends:
        cmd = [sys.executable, "-m", "benchmarks.step_time", "--backend",
               backend, "--out", _json_path(backend, wave2)] + extra
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True,
                       cwd=os.path.dirname(os.path.dirname(RESULTS)))


# ------------------------------------------------------------------ report
def _native(impl):
    return impl not in ZOO_IMPLS


def _grouped(result):
    """{(case, optimizer): {impl: record}} in run order."""
    out = {}
    for r in result["steps"]:
        out.setdefault((r["case"], r["optimizer"]), {})[r["impl"]] = r
    return out


def _best_native(impls):
    native = {k: v for k, v in impls.items() if _native(k)}
    name = min(native, key=lambda k: native[k]["median_ms"])
    return name, native[name]


def _fmt_ms(ms):
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def summary_rows(results):
    """(backend, optimizer, case, zoo ms, best native, its ms, ratio,
    ratio to keras)."""
    rows = []
    for result in results:
        for (case, name), impls in _grouped(result).items():
            if "zoo" not in impls:
                continue
            best, rec = _best_native(impls)
            zoo = impls["zoo"]["median_ms"]
            keras_ms = impls.get("keras", {}).get("median_ms")
            rows.append((result["backend"], name, case, zoo, best,
                         rec["median_ms"], zoo / rec["median_ms"],
                         zoo / keras_ms if keras_ms else None))
    return rows


def markdown(results):
    lines = ["# Optimizer step time", ""]
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    quick = any(r["quick"] for r in results)
    lines += [
        f"Generated {when} by `python -m benchmarks.run_all"
        f"{' --quick' if quick else ''}`. One optimizer step on "
        "precomputed gradients, as each framework's training loop runs it "
        "(torch: eager `apply` under `no_grad`; JAX: jitted "
        "`stateless_apply` with donated buffers, optax jitted likewise; "
        "TensorFlow: `apply` in `tf.function(jit_compile=True)`). Medians "
        "of interleaved rounds; the detailed tables give min–max.",
        "",
    ]
    for r in results:
        m = r["machine"]
        load = ", ".join(
            f"{k.split('_')[1]} {tuple(round(x, 2) for x in m[k])}"
            for k in ("load_before", "load_after") if m.get(k))
        versions = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        lines.append(f"- **{r['backend']}**: {versions}; {m['cpus']} CPUs, "
                     f"{r['threads']} thread(s), {r['rounds']} rounds; "
                     f"load average {load}")
    lines += ["", "Load average above 1 per core means other processes "
              "shared the machine: compare ratios within one table (taken "
              "interleaved), not absolute times across runs.", ""]

    lines += ["## Zoo vs the fastest native peer", "",
              "Ratio = zoo step time / fastest native implementation "
              "(Keras built-in, torch.optim for-loop/foreach/fused, optax); "
              "below 1 the zoo is faster.", ""]
    rows = summary_rows(results)
    cases = list(dict.fromkeys(row[2] for row in rows))
    for backend in dict.fromkeys(row[0] for row in rows):
        lines += [f"### {backend}", "",
                  "| optimizer | " + " | ".join(cases) + " |",
                  "|---|" + "---|" * len(cases)]
        for name in OPTIMIZERS:
            if not any(x[:2] == (backend, name) for x in rows):
                continue
            cells = []
            for case in cases:
                row = next((x for x in rows if x[:3] == (backend, name, case)),
                           None)
                if row is None:
                    cells.append("")
                    continue
                cells.append(f"{row[6]:.2f}× vs {row[4]}"
                             + (f"; {row[7]:.2f}× vs keras"
                                if row[7] and row[4] != "keras" else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["## All implementations", "",
              "Each cell: ratio to the fastest native peer of the row, then "
              "median ms [min–max].", ""]
    for result in results:
        grouped = _grouped(result)
        impls = [i for i in IMPL_ORDER
                 if any(i in v for v in grouped.values())]
        lines += [f"### {result['backend']}", "",
                  "| case | optimizer | " + " | ".join(impls) + " |",
                  "|---|---|" + "---|" * len(impls)]
        for (case, name), recs in grouped.items():
            best = _best_native(recs)[1]["median_ms"]
            cells = []
            for impl in impls:
                r = recs.get(impl)
                cells.append("" if r is None else (
                    f"{r['median_ms'] / best:.2f}× {_fmt_ms(r['median_ms'])}"
                    f" [{_fmt_ms(r['min_ms'])}–{_fmt_ms(r['max_ms'])}]"))
            lines.append(f"| {case} | {name} | " + " | ".join(cells) + " |")
        lines.append("")

    lines += ["## Optimizer state, bytes per parameter", "",
              "Optimizer variables (slots, counters) over the parameter "
              "count, at the largest 10-tensor size run. `zoo workspace`: "
              "scratch tensors the torch multi-tensor path keeps between "
              "steps (torch.optim's foreach path allocates the same "
              "temporaries anew each step).", ""]
    lines += ["| backend | optimizer | " + " | ".join(
        ("zoo", "zoo workspace", "keras", "torch.optim", "optax")) + " |",
        "|---|---|---|---|---|---|---|"]
    for result in results:
        sized = [r for r in result["steps"] if r["n_tensors"] == 10]
        if not sized:
            continue
        top = max(r["n_params"] for r in sized)
        for name in OPTIMIZERS:
            recs = {r["impl"]: r for r in sized
                    if r["n_params"] == top and r["optimizer"] == name}
            if not recs:
                continue
            torch_rec = next((recs[k] for k in recs
                              if k.startswith("torch.optim")), None)

            def fmt(rec, key="state_bytes_per_param"):
                return "" if rec is None else f"{rec[key]:.1f}"

            workspace = fmt(recs.get("zoo"), "workspace_bytes_per_param") \
                if result["backend"] == "torch" else ""
            lines.append(
                f"| {result['backend']} | {name} | {fmt(recs.get('zoo'))} | "
                + workspace
                + f" | {fmt(recs.get('keras'))} | {fmt(torch_rec)} | "
                f"{fmt(recs.get('optax'))} |")
    lines.append("")

    lines += ["## Whole `fit`: MLP 256-1024-1024-10, batch 128, Adam", "",
              "Time per training step of `model.fit` (eager on torch, "
              "`jit_compile=True` on JAX/TF) and the optimizer step alone on "
              "the same variables; share = optimizer / fit step.", "",
              "| backend | optimizer | fit ms/step [min–max] | optimizer ms | "
              "share |", "|---|---|---|---|---|"]
    for result in results:
        for r in result.get("fit", []):
            lines.append(
                f"| {result['backend']} | {r['impl']} | "
                f"{r['fit_step_median_ms']:.1f} [{r['fit_step_min_ms']:.1f}"
                f"–{r['fit_step_max_ms']:.1f}] | "
                f"{r['optimizer_step_ms']:.2f} | "
                f"{r['optimizer_share']:.0%} |")
    lines.append("")
    return "\n".join(lines)


def plot(results, path, names=("sgd_momentum", "adam", "rmsprop")):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), len(names), squeeze=False,
                             figsize=(4.2 * len(names), 3.4 * len(results)))
    for row, result in zip(axes, results):
        for ax, name in zip(row, names):
            recs = [r for r in result["steps"]
                    if r["optimizer"] == name and r["n_tensors"] == 10]
            for impl in IMPL_ORDER:
                pts = sorted((r["n_params"], r["median_ms"], r["min_ms"],
                              r["max_ms"]) for r in recs if r["impl"] == impl)
                if not pts:
                    continue
                x = [p[0] for p in pts]
                y = [p[1] for p in pts]
                err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
                style = "-" if impl in ZOO_IMPLS else "--"
                ax.errorbar(x, y, yerr=err, fmt=style + "o", ms=3,
                            capsize=2, label=impl,
                            lw=2 if impl == "zoo" else 1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{result['backend']}: {name}", fontsize=9)
            ax.set_xlabel("parameters (10 tensors)", fontsize=8)
            ax.set_ylabel("ms per step", fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(backends):
    results = []
    for backend in backends:
        path = _json_path(backend)
        if os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
    if not results:
        raise SystemExit("no results to report")
    md = os.path.join(RESULTS, "step_time.md")
    with open(md, "w") as f:
        f.write(markdown(results))
    plot(results, os.path.join(RESULTS, "step_time.png"))
    print(f"wrote {md} and step_time.png")
    return results


def write_wave2_report():
    """--wave2: results/tables.md (all of readme_tables' sections) and the
    ratio table on stdout."""
    from benchmarks import readme_tables

    path = os.path.join(RESULTS, "tables.md")
    with open(path, "w") as f:
        f.write(readme_tables.render())
    print(readme_tables.wave2_summary() or "no wave-2 results")
    print(f"wrote {path}; README.md's block: python -m "
          "benchmarks.readme_tables --readme README.md")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--wave2", action="store_true",
                        help="the second-wave optimizers (step_time "
                        "--wave2) into results/step_time_wave2_<backend>"
                        ".json, rendered into results/tables.md")
    parser.add_argument("--backends", nargs="*", default=list(BACKENDS),
                        choices=list(BACKENDS))
    parser.add_argument("--report-only", action="store_true")
    args, extra = parser.parse_known_args(argv)
    if not args.report_only:
        os.makedirs(RESULTS, exist_ok=True)
        run_backends(args.backends, (["--quick"] if args.quick else [])
                     + (["--wave2"] if args.wave2 else []) + extra,
                     wave2=args.wave2)
    if args.wave2:
        write_wave2_report()
    else:
        write_report(args.backends)


if __name__ == "__main__":
    main()
