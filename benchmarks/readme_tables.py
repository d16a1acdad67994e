"""Renders the README's benchmark tables from ``benchmarks/results/*.json``.

    python -m benchmarks.readme_tables                       # -> stdout
    python -m benchmarks.readme_tables --out README_benchmarks.md

Nothing is typed by hand: every number comes from a saved result, and every
table is preceded by the machine, the versions and the load average the
result recorded (a benchmark on a shared machine says so). Sources, each
optional (a missing file leaves its section out):

* ``step_time_<backend>.json`` (``benchmarks.run_all``): the step-time
  tables of ``run_all.markdown``;
* ``step_time_small_torch.json`` (``step_time --backend torch --small``):
  ours against torch.optim's fastest at 1e4 and 1e5 parameters;
* ``whole_model_<backend>.json`` (``benchmarks.whole_model``);
* ``memory_<backend>.json`` (``benchmarks.memory``).
"""

import argparse
import json
import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BACKENDS = ("torch", "jax", "tensorflow")


def _load(name):
    path = os.path.join(RESULTS, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _machine(result):
    m = result.get("machine", {})
    load = m.get("load_before") or m.get("load")
    after = m.get("load_after")
    parts = [f"{m.get('cpus', '?')} CPUs", m.get("platform", "?")]
    if result.get("device"):
        parts.insert(0, result["device"])
    if load:
        parts.append("load average " + "/".join(f"{x:.2f}" for x in load)
                     + ("" if not after else
                        " before, " + "/".join(f"{x:.2f}" for x in after)
                        + " after"))
    versions = result.get("versions")
    if versions:
        parts.append(", ".join(f"{k} {v}" for k, v in versions.items()))
    if "threads" in result:
        parts.append(f"{result['threads']} thread(s)")
    return "_Machine: " + "; ".join(str(p) for p in parts) + "._"


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _ms(x):
    return "—" if x is None else f"{x:.3f}"


def step_time_section():
    results = {b: _load(f"step_time_{b}.json") for b in BACKENDS}
    results = {b: r for b, r in results.items() if r is not None}
    if not results:
        return None
    from benchmarks import run_all

    # run_all's report names the machine and load of each backend itself
    text = run_all.markdown(list(results.values()))
    return "\n".join("#" + line if line.startswith("#") else line
                     for line in text.splitlines())


def small_section():
    r = _load("step_time_small_torch.json")
    if r is None:
        return None
    by = {}
    for rec in r["steps"]:
        by.setdefault((rec["case"], rec["optimizer"]), {})[rec["impl"]] = \
            rec["median_ms"]
    impls = ["zoo (retrace)", "zoo", "zoo (lean)", "torch.optim (foreach)",
             "torch.optim (fused)"]
    rows = []
    for (case, name), ms in by.items():
        native = [v for k, v in ms.items() if k.startswith("torch.optim")]
        best = min(native) if native else None
        ratios = [f"{ms[i] / best:.2f}x" if best and i in ms else "—"
                  for i in ("zoo (retrace)", "zoo", "zoo (lean)")]
        rows.append([case, name] + [_ms(ms.get(i)) for i in impls] + ratios)
    return "\n".join([
        "## torch: small and medium models (ms per step)\n",
        _machine(r), "",
        "`python -m benchmarks.step_time --backend torch --small`; "
        "the ratios are ours over torch.optim's fastest variant, measured "
        "interleaved in one process. `zoo (retrace)`: the multi-tensor path "
        "as it was before the recorded-trace replay (`_update` traced every "
        "step); `zoo`: `apply()` now; `zoo (lean)`: "
        "`keras_optzoo.fastpath.lean_step`, without `apply()`'s "
        "bookkeeping.\n",
        _table(["case", "optimizer"] + impls
               + ["retrace / best", "zoo / best", "lean / best"], rows)])


def whole_model_section():
    parts = []
    for b in BACKENDS:
        r = _load(f"whole_model_{b}.json")
        if r is None:
            continue
        rows = [[rec["model"], f"{rec['n_params']:,}", rec["impl"],
                 f"{rec['step_median_ms']:.2f} "
                 f"({rec['step_min_ms']:.2f}–{rec['step_max_ms']:.2f})",
                 f"{rec['optimizer_step_ms']:.3f}",
                 f"{rec['optimizer_share']:.1%}",
                 f"{rec['peak_rss_mb']:.0f}"
                 + (f" / {rec['peak_cuda_mb']:.0f} GPU"
                    if "peak_cuda_mb" in rec else "")]
                for rec in r["records"]]
        parts.append(f"### {b}\n\n{_machine(r)}\n\n" + _table(
            ["model", "params", "optimizer", "ms per training step",
             "optimizer step (ms)", "optimizer share", "peak memory (MB)"],
            rows))
    if not parts:
        return None
    return "\n\n".join(["## Whole-model training (AdamW)\n\n"
                        "`python -m benchmarks.whole_model --backend "
                        "<backend> [--quick]`: `fit` of a ResNet-style CNN "
                        "and a transformer block on random data; `torch "
                        "loop` is a plain torch loop with torch.optim.AdamW "
                        "on the same model."] + parts)


def memory_section():
    torch_r, jax_r = _load("memory_torch.json"), _load("memory_jax.json")
    if torch_r is None and jax_r is None:
        return None
    rows = {}
    for r in (torch_r, jax_r):
        for rec in (r or {}).get("records", []):
            rows.setdefault(rec["optimizer"], {}).update(rec)

    def fmt(x):
        return "—" if x is None else f"{x:.2f}"

    body = [[name, fmt(rec.get("state_bytes_per_param")),
             fmt(rec.get("torch_state_bytes_per_param")),
             fmt(rec.get("optax_state_bytes_per_param")),
             fmt(rec.get("workspace_bytes_per_param")),
             fmt(rec.get("step_temp_bytes_per_param")),
             fmt(rec.get("optax_step_temp_bytes_per_param"))]
            for name, rec in sorted(rows.items(), key=lambda x: x[0].lower())]
    machine = "\n".join(_machine(r) for r in (torch_r, jax_r) if r)
    return "\n".join([
        "## Memory per optimizer (bytes per parameter, float32)\n",
        machine, "",
        "`python -m benchmarks.memory --backend torch` and `--backend jax`. "
        "State: the optimizer's variables (without the iteration counter and "
        "learning rate). torch workspace: scratch the multi-tensor path "
        "keeps. Step temp: XLA's temporary buffers for the compiled step "
        "(JAX), ours and optax's.\n",
        _table(["optimizer", "state", "torch.optim state", "optax state",
                "torch workspace", "JAX step temp", "optax step temp"],
               body)])


def render():
    sections = [s for s in (small_section(), whole_model_section(),
                            memory_section(), step_time_section()) if s]
    head = ("<!-- generated by `python -m benchmarks.readme_tables` from "
            "benchmarks/results/*.json: do not edit by hand -->\n\n"
            "# Benchmarks\n")
    return head + "\n\n".join(sections) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    text = render()
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
