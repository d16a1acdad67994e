"""Renders the README's benchmark tables from ``benchmarks/results/*.json``.

    python -m benchmarks.readme_tables                       # -> stdout
    python -m benchmarks.readme_tables --out benchmarks/results/tables.md \
        --readme README.md

Nothing is typed by hand: every number comes from a saved result, and every
table is preceded by the machine, the versions and the load average the
result recorded (a benchmark on a shared machine says so). Sources, each
optional (a missing file leaves its section out):

* ``step_time_wave2_<backend>.json`` (``benchmarks.run_all --wave2``): the
  second-wave optimizers against their references, optax and Keras; its
  ratio table is also what ``--readme`` writes into README.md, between the
  ``<!-- benchmark-tables:start -->`` and ``:end`` markers (the rest of the
  README is written by hand);
* ``kernel_count_torch.json`` (``benchmarks.kernel_count --out``): the
  last column of that ratio table, full passes over the parameters' memory
  per torch step, the zoo's over its leanest reference variant's;
* ``step_time_<backend>.json`` (``benchmarks.run_all``): the step-time
  tables of ``run_all.markdown``;
* ``step_time_small_torch.json`` (``step_time --backend torch --small``):
  ours against torch.optim's fastest at 1e4 and 1e5 parameters;
* ``whole_model_<backend>.json`` (``benchmarks.whole_model``);
* ``memory_<backend>.json`` (``benchmarks.memory``) and
  ``sharded_memory.json`` (``benchmarks.sharded_memory``): their state
  tables are also what ``--readme`` writes between the
  ``<!-- memory-tables:start -->`` and ``:end`` markers of README.md.
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


def _source(result):
    """" Source: commit abc1234 (+ N changed files)." where recorded."""
    source = result.get("source")
    if not source:
        return ""
    changed = [f for f in source["changed"] if f.startswith("keras_optzoo/")]
    return (f" Source: commit {source['commit']}"
            + (f" with uncommitted changes to {len(changed)} files of "
               "keras_optzoo/ (listed in the JSON)" if changed else "") + ".")


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


def _whole_model_tables(prefix, by_optimizer):
    """One table per backend of ``<prefix>_<backend>.json``; the
    second-wave files (``by_optimizer``) name the optimizer and the commit,
    the first-wave ones the peak memory."""
    parts = []
    for b in BACKENDS:
        r = _load(f"{prefix}_{b}.json")
        if r is None:
            continue
        rows = []
        for rec in r["records"]:
            row = [rec["model"], f"{rec['n_params']:,}", rec["impl"],
                   f"{rec['step_median_ms']:.2f} "
                   f"({rec['step_min_ms']:.2f}–{rec['step_max_ms']:.2f})",
                   f"{rec['optimizer_step_ms']:.3f}",
                   f"{rec['optimizer_share']:.1%}"]
            if by_optimizer:
                row.insert(0, rec["optimizer"])
            else:
                row.append(f"{rec['peak_rss_mb']:.0f}"
                           + (f" / {rec['peak_cuda_mb']:.0f} GPU"
                              if "peak_cuda_mb" in rec else ""))
            rows.append(row)
        if by_optimizer:
            header = ["optimizer", "model", "params", "implementation",
                      "ms per training step", "optimizer step alone (ms)",
                      "optimizer share"]
            machine = _machine(r) + _source(r)
        else:
            header = ["model", "params", "optimizer", "ms per training step",
                      "optimizer step (ms)", "optimizer share",
                      "peak memory (MB)"]
            machine = _machine(r)
        parts.append(f"### {b}\n\n{machine}\n\n" + _table(header, rows))
    return parts


def whole_model_section():
    parts = _whole_model_tables("whole_model", by_optimizer=False)
    if not parts:
        return None
    return "\n\n".join(["## Whole-model training (AdamW)\n\n"
                        "`python -m benchmarks.whole_model --backend "
                        "<backend> [--quick]`: `fit` of a ResNet-style CNN "
                        "and a transformer block on random data; `torch "
                        "loop` is a plain torch loop with torch.optim.AdamW "
                        "on the same model."] + parts)


def whole_model_wave2_section():
    """``whole_model_wave2_<backend>.json`` (issue 19, item 5): the zoo,
    Keras's built-in and the reference's plain torch loop per optimizer."""
    parts = _whole_model_tables("whole_model_wave2", by_optimizer=True)
    if not parts:
        return None
    return "\n\n".join([
        "## Whole-model training, second wave\n\n"
        "`python -m benchmarks.whole_model --backend torch --quick "
        "--optimizers lamb lars adamp muon adafactor --out "
        "benchmarks/results/whole_model_wave2_torch.json`: `fit` with the "
        "zoo and with Keras's built-in of the same name (a different "
        "algorithm for Lamb, Muon and Adafactor), against the reference's "
        "plain torch loop on the same model. `--quick` times 2 epochs of "
        "20 steps after a warm-up epoch, and the optimizer step alone after "
        "20 warm-up steps (past the first steps, where the torch fast path "
        "re-traces a step when a `where` guard changes)."]
        + parts)


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
             fmt(rec.get("torch_state_bytes_per_param"))
             + (f" ({rec['torch_reference']})"
                if rec.get("torch_reference") else ""),
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
        "learning rate), with the arguments the step-time benchmark uses "
        "(Lars and SGDP with momentum 0.9); next to it the same for the "
        "torch-side reference the zoo is tested against. torch workspace: "
        "scratch the multi-tensor path keeps. Step temp: XLA's temporary buffers for the compiled step "
        "(JAX), ours and optax's.\n",
        _table(["optimizer", "state", "torch reference state",
                "optax state", "torch workspace", "JAX step temp", "optax step temp"],
               body)] + _kernel_1024_lines(torch_r, jax_r))


def _kernel_1024_lines(*results):
    """One 1024x1024 float32 kernel's state bytes (memory.py's
    ``kernel_1024``), from the first result that has it."""
    for r in results:
        kernel = (r or {}).get("kernel_1024")
        if kernel:
            return ["", "One 1024×1024 float32 kernel, optimizer state in "
                    "bytes: " + ", ".join(f"{k} {v:,}"
                                          for k, v in kernel.items()) + "."]
    return []


#: the issues' targets for zoo / peer at 1e6 parameters, per backend
WAVE2_TARGETS = {"torch": 1.1, "jax": 1.0, "tensorflow": 1.0}
WAVE2_BACKEND_NAMES = {"torch": "torch", "jax": "JAX", "tensorflow": "TF"}


def _wave2_results():
    results = {b: _load(f"step_time_wave2_{b}.json") for b in BACKENDS}
    return {b: r for b, r in results.items() if r is not None}


def _is_reference(impl):
    """A torch-side reference implementation (not ours, Keras or optax)."""
    from benchmarks.step_time import ZOO_IMPLS

    return (impl not in ZOO_IMPLS and impl != "keras"
            and not impl.startswith("optax"))


def wave2_ratios(results=None):
    """``{(backend, optimizer, n_params): {peer: (zoo / peer, peer impl)}}``
    with peer "reference" (torch: the fastest torch-side reference
    variant), "optax" and "keras"; a peer the optimizer lacks is absent."""
    results = _wave2_results() if results is None else results
    out = {}
    for backend, r in results.items():
        by = {}
        for rec in r["steps"]:
            by.setdefault((rec["optimizer"], rec["n_params"]), {})[
                rec["impl"]] = rec["median_ms"]
        for (name, n), ms in by.items():
            if "zoo" not in ms:
                continue
            cell = {}
            refs = {k: v for k, v in ms.items() if _is_reference(k)}
            if refs:
                best = min(refs, key=refs.get)
                cell["reference"] = (ms["zoo"] / refs[best], best)
            for k, v in ms.items():
                if k.startswith("optax"):
                    cell["optax"] = (ms["zoo"] / v, k)
                elif k == "keras":
                    cell["keras"] = (ms["zoo"] / v, k)
            out[(backend, name, n)] = cell
    return out


def _ratio(x, target):
    """``x`` to 2 decimals, in bold when that is above ``target``."""
    text = f"{x:.2f}×"
    return f"**{text}**" if round(x, 2) > target else text


def wave2_summary(results=None):
    """The ratio table: optimizer x backend x size."""
    from benchmarks.step_time import WAVE2, _short

    results = _wave2_results() if results is None else results
    if not results:
        return None
    ratios = wave2_ratios(results)
    sizes = sorted({n for (_, _, n) in ratios})
    backends = [b for b in BACKENDS if b in results]
    header = ["optimizer"] + [f"{WAVE2_BACKEND_NAMES[b]} {_short(n)}"
                              for b in backends for n in sizes]
    header.append("torch reference (fastest variant at the largest size)")
    # full passes over the parameters' memory per torch step, zoo / the
    # leanest reference variant (benchmarks.kernel_count: exact counts)
    traffic = (_load("kernel_count_torch.json") or {}).get("results", {})
    if traffic:
        header.append("torch traffic, zoo / leanest reference")
    rows = []
    for name in WAVE2:
        if not any((b, name, n) in ratios for b in backends for n in sizes):
            continue  # not measured yet (listed in step_time.WAVE2)
        row, ref_name = [name], "—"
        for b in backends:
            target = WAVE2_TARGETS[b]
            for n in sizes:
                cell = ratios.get((b, name, n))
                if cell is None:
                    # added to --wave2 after this backend's last run
                    row.append("not run")
                    continue
                parts = []
                if b == "torch" and "reference" in cell:
                    parts.append(_ratio(cell["reference"][0], target))
                    ref_name = cell["reference"][1]
                if "optax" in cell:
                    label = cell["optax"][1]
                    parts.append(f"{_ratio(cell['optax'][0], target)} "
                                 f"{label}")
                if "keras" in cell:
                    parts.append(f"{_ratio(cell['keras'][0], target)} keras")
                row.append(" / ".join(parts) if parts else "zoo only")
        row.append(ref_name)
        if traffic:
            counts = dict(traffic.get(name, {}))
            zoo = counts.pop("zoo", None)
            if zoo is None or not counts:
                row.append("—")
            else:
                lean = min(c[2] for c in counts.values())
                row.append(f"{zoo[2]:g} / {lean:g}")
        rows.append(row)
    return _table(header, rows)


def wave2_section():
    from benchmarks.step_time import _short

    results = _wave2_results()
    if not results:
        return None
    parts = [
        "## Second-wave optimizers: step time against their references\n",
        "`python -m benchmarks.run_all --wave2` (each backend: "
        "`python -m benchmarks.step_time --backend <backend> --wave2 "
        "--threads 1`). One step on precomputed gradients, 10 float32 "
        "matrices per size (so Adafactor factors and Muon orthogonalises "
        "each), medians of interleaved rounds. Ratio = zoo / peer: torch, "
        "the fastest variant (for-loop, foreach, fused) of the reference "
        "implementation the zoo is tested against (Yogi's is optax, so it "
        "has none on torch); JAX, optax (or optax.contrib) and the Keras "
        "built-in; TF, the Keras built-in. optax's and Keras's variants of "
        "an algorithm differ from the zoo's in details (each class's "
        "docstring), not in cost. In **bold**: above the issues' targets "
        "(torch ≤ 1.1×, JAX and TF ≤ 1.0×); below 1 the zoo is faster. "
        "On a shared, loaded machine single cells change between runs by "
        "far more than one run's min–max shows: a miss is real when it is "
        "large or repeats across sizes and backends.\n"]
    parts += ["\n\n".join(_machine(r) + _source(r)
                          for r in results.values())]
    parts += ["", wave2_summary(results), ""]
    for backend, r in results.items():
        rows = {}
        for rec in r["steps"]:
            rows.setdefault((rec["case"], rec["optimizer"]), []).append(rec)
        body = []
        for (case, name), recs in rows.items():
            zoo = next((x for x in recs if x["impl"] == "zoo"), None)
            if zoo is None:
                continue
            path = f" ({zoo['update_path']})" if zoo.get("update_path") \
                else ""
            peers = "; ".join(
                f"{x['impl']} {x['median_ms']:.3f} [{x['min_ms']:.3f}–"
                f"{x['max_ms']:.3f}]" for x in recs if x["impl"] != "zoo")
            body.append([case, name,
                         f"{zoo['median_ms']:.3f} [{zoo['min_ms']:.3f}–"
                         f"{zoo['max_ms']:.3f}]{path}", peers or "—"])
        failed = "".join(f"\n\nFailed to run: {f['optimizer']} {f['impl']}"
                         f" ({f['error']})" for f in r.get("failed", []))
        parts += [f"### {WAVE2_BACKEND_NAMES[backend]}: ms per step "
                  "[min–max over rounds]\n",
                  _table(["case", "optimizer", "zoo (torch: update path)",
                          "peers"], body) + failed, ""]
    # state bytes per parameter at the largest size
    state_rows = {}
    top = max(rec["n_params"] for r in results.values() for rec in r["steps"])
    for backend, r in results.items():
        for rec in r["steps"]:
            if rec["n_params"] != top:
                continue
            row = state_rows.setdefault(rec["optimizer"], {})
            impl = rec["impl"]
            key = ("zoo" if impl == "zoo" else "keras" if impl == "keras"
                   else "optax" if impl.startswith("optax") else "reference")
            row.setdefault(key, rec["state_bytes_per_param"])
    fmt = (lambda x: "—" if x is None else f"{x:.2f}")
    parts += [
        f"### Optimizer state at {_short(top)} parameters (bytes per "
        "parameter)\n",
        "All optimizer variables, counters included; each implementation's "
        "own count (see also the memory table, which leaves counters out).\n",
        _table(["optimizer", "zoo", "torch reference", "optax", "keras"],
               [[name, fmt(row.get("zoo")), fmt(row.get("reference")),
                 fmt(row.get("optax")), fmt(row.get("keras"))]
                for name, row in state_rows.items()])]
    return "\n".join(parts)


def render():
    sections = [s for s in (wave2_section(), small_section(),
                            whole_model_section(),
                            whole_model_wave2_section(), memory_section(),
                            step_time_section()) if s]
    head = ("<!-- generated by `python -m benchmarks.readme_tables` from "
            "benchmarks/results/*.json: do not edit by hand -->\n\n"
            "# Benchmarks\n")
    return head + "\n\n".join(sections) + "\n"


README_START = "<!-- benchmark-tables:start -->"
README_END = "<!-- benchmark-tables:end -->"


def readme_block():
    """What README.md holds between its benchmark-tables markers: the
    second-wave ratio table, with where it was measured."""
    results = _wave2_results()
    if not results:
        return None
    machines = "\n\n".join(_machine(r) + _source(r)
                           for r in results.values())
    return "\n".join([
        README_START,
        "<!-- generated by `python -m benchmarks.readme_tables --readme "
        "README.md` from benchmarks/results/step_time_wave2_*.json: do not "
        "edit by hand -->",
        "",
        "Second-wave optimizers, step time of the zoo over its peer's "
        "(`python -m benchmarks.run_all --wave2`; 10 float32 matrices; "
        "torch: the fastest variant of the reference implementation the "
        "zoo is tested against; JAX: optax and Keras; TF: Keras; **bold**: "
        "above the issues' targets of 1.1× on torch and 1.0× on JAX/TF; "
        "last column: full passes over the parameters' memory in one torch "
        "step, exact counts from the operators' schemas, "
        "`python -m benchmarks.kernel_count`). "
        "Per-implementation times and state bytes in "
        "[`benchmarks/results/tables.md`](benchmarks/results/tables.md). "
        "Measured on a shared, loaded machine: single cells change between "
        "runs by far more than one run's min–max shows; a miss is real when "
        "it is large or repeats across sizes and backends.",
        "",
        wave2_summary(results),
        "",
        machines,
        README_END])


MEMORY_START = "<!-- memory-tables:start -->"
MEMORY_END = "<!-- memory-tables:end -->"


def _bytes(x):
    return "—" if x is None else f"{x:.2f}"


def memory_block():
    """What README.md holds between its memory-tables markers: state bytes
    per parameter of every optimizer (memory_jax.json, the torch-side
    references' from memory_torch.json, optax's from memory_jax.json) and
    the transformer-block comparison of sharded_memory.json."""
    jax_r, torch_r = _load("memory_jax.json"), _load("memory_torch.json")
    sharded = _load("sharded_memory.json")
    if jax_r is None:
        return None
    torch_recs = {rec["optimizer"]: rec
                  for rec in (torch_r or {}).get("records", [])}
    body = []
    for rec in sorted(jax_r["records"], key=lambda r: r["optimizer"].lower()):
        peer = torch_recs.get(rec["optimizer"], {})
        ref = peer.get("torch_state_bytes_per_param")
        body.append([
            rec["optimizer"], _bytes(rec["state_bytes_per_param"]),
            _bytes(ref) + (f" ({peer['torch_reference']})"
                           if ref is not None else ""),
            _bytes(rec.get("optax_state_bytes_per_param"))])
    out = [
        MEMORY_START,
        "<!-- generated by `python -m benchmarks.readme_tables --readme "
        "README.md` from benchmarks/results/memory_*.json and "
        "sharded_memory.json: do not edit by hand -->",
        "",
        "Optimizer state in bytes per float32 parameter "
        "(`python -m benchmarks.memory --backend jax`: a 512×512 and a "
        "10×512 matrix and their biases, 267,786 parameters; the defaults, "
        "with momentum 0.9 for Lars and SGDP; iteration counter and "
        "learning rate left out). Next to it the same for the torch-side "
        "reference the zoo is tested against (after one step, "
        "`--backend torch`) and for optax's. On one device; with "
        "`shard_state=True` each device holds 1/N of it "
        "(below). The 8-bit optimizers' state of variables under "
        "`min_8bit_size` (4096) elements stays float32, which is why "
        "AdamW8bit shows 2.04 rather than 2. Lookahead: its inner "
        "optimizer's state plus 4 (the slow weights).",
        "",
        _table(["optimizer", "state", "torch reference", "optax"], body),
        "",
        _machine(jax_r),
    ]
    if sharded is not None:
        model = sharded["model"]
        rows = []
        for rec in sharded["records"]:
            rows.append([
                rec["optimizer"],
                f"{rec['optimizer_state_bytes_per_device'] / 2**20:.1f}",
                f"{rec['optimizer_state_bytes_all_devices'] / 2**20:.1f}",
                f"{rec['state_bytes_per_param_per_device']:.2f}",
                f"{rec['peak_rss_bytes'] / 2**20:.0f}",
                f"{rec['peak_rss_over_sgd_bytes'] / 2**20:+.0f}"])
        n = sharded["records"][0]["n_params"]
        out += [
            "",
            f"A transformer block ({n / 1e6:.1f}M parameters: self-attention "
            f"with d_model {model['d_model']}, {model['heads']} heads, an "
            f"MLP of {model['mlp']}, two LayerNorms) trained "
            f"{model['steps']} steps with `fit` under "
            f"`keras.distribution.{sharded['distribution']}` on "
            f"{sharded['devices']} virtual JAX CPU devices "
            "(`python -m benchmarks.sharded_memory --out "
            "benchmarks/results/sharded_memory.json`). State per device: "
            "read from the arrays' shardings; all devices: the sum over "
            "them (replicated state is held once per device). Peak RSS: "
            "the whole process (the virtual devices share it, so every "
            "device's copy counts), each optimizer in a fresh process, "
            "compilation included; the last column subtracts SGD without "
            "momentum (no state).",
            "",
            _table(["optimizer", "state per device (MiB)",
                    "state, all devices (MiB)",
                    "state bytes / parameter / device", "peak RSS (MiB)",
                    "peak RSS vs SGD (MiB)"], rows),
            "",
            _machine(sharded),
        ]
    out.append(MEMORY_END)
    return "\n".join(out)


def _replace_between(text, start_marker, end_marker, block, path):
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise SystemExit(f"{path} has no {start_marker} ... {end_marker} "
                         "block")
    return text[:start] + block + text[end + len(end_marker):]


def update_readme(path):
    """Replaces the blocks between the markers in ``path``."""
    with open(path) as f:
        text = f.read()
    block = readme_block()
    if block is None:
        raise SystemExit("no step_time_wave2_*.json results to render")
    text = _replace_between(text, README_START, README_END, block, path)
    block = memory_block()
    if block is None:
        raise SystemExit("no memory_jax.json results to render")
    text = _replace_between(text, MEMORY_START, MEMORY_END, block, path)
    with open(path, "w") as f:
        f.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--readme", default=None, metavar="README.md",
                        help="also rewrite the generated block of this file "
                        "(between its benchmark-tables markers)")
    args = parser.parse_args(argv)
    text = render()
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text, end="")
    if args.readme:
        update_readme(args.readme)


if __name__ == "__main__":
    main()
