"""Writes the documentation site's pages: ``python docs/gen_pages.py``.

A plain script (docs/hooks.py runs it before every ``mkdocs build``): every
page under docs/ except docs/src/ and docs/assets/ comes from here, read from
the optimizer registry, the docstrings, the hand-written pages in docs/src/
(topics/, guides/, schedules.md: their links are written for GitHub, relative
to the file, and are rewritten here for the site), the README's landing
sections (pitch, install, quickstart, the optimizer table, examples,
performance), benchmarks/results/*.json, the playground and the schedules'
test cases. A new optimizer, schedule or results file appears on the next
build without an edit. Files are rewritten only when their content changes
(``mkdocs serve`` watches docs/).
"""

import glob
import hashlib
import inspect
import json
import os
import pathlib
import re
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = DOCS / "src"
#: folders (and files) under docs/ that this script owns (git-ignored)
GENERATED = ("index.md", "optimizers", "schedules", "guides", "topics", "api",
             "images/generated")
IMAGES = DOCS / "images" / "generated"

#: the playground surface and baseline of each optimizer's picture
PLAYGROUND_FUNCTION = "tutorial"
PLAYGROUND_BASELINE = "sgd"
PLAYGROUND_STEPS = 150

#: topic pages: (name, navigation title, README sections (heading prefixes;
#: "?" before one: used when the README has it), API objects rendered after
#: them). docs/src/topics/<name>.md, where it exists, comes first.
TOPICS = [
    ("param-groups", "Parameter groups", [], ["keras_optzoo.param_groups"]),
    ("gradient-transforms", "Gradient transforms", [], []),
    ("callbacks", "Callbacks", [], ["keras_optzoo.callbacks"]),
    ("averaging", "Weight averaging (SWA, EMA)", [],
     ["keras_optzoo.callbacks.WeightAveraging",
      "keras_optzoo.callbacks.update_bn", "keras_optzoo.schedules.SWALR"]),
    ("sam", "SAM and ASAM", [], ["keras_optzoo.SAMModel"]),
    ("lbfgs", "Optimizers with their own API (L-BFGS)", [],
     ["keras_optzoo.LBFGS", "keras_optzoo.optimizers.lbfgs.fit_lbfgs"]),
    ("playground", "The playground", [], ["keras_optzoo.playground"]),
    ("layout", "The layout rule", [], ["keras_optzoo.layout"]),
    ("compatibility", "Compatibility with Keras", [], []),
    ("correctness", "How correctness is shown", [], []),
    ("scaling-out", "Scaling out", [], []),
    ("performance", "Performance", ["Performance"], []),
    ("memory", "Memory", ["?Memory"], []),
    ("examples", "Examples", ["Examples"], []),
    ("contributing", "Contributing", [], []),
]
#: the schedule family pages (module -> navigation title, page title), in
#: navigation order; a new module without one gets its docstring's first line
SCHEDULE_FAMILIES = {
    "decay": ("Step and exponential decay",
              "Step, multi-step, exponential and polynomial decay"),
    "warmup": ("Constant and linear factor",
               "Constant and linear factors: ConstantLR, LinearLR"),
    "cosine": ("Cosine annealing",
               "Cosine annealing, with and without warm restarts"),
    "cyclic": ("Cyclical", "Cyclical schedules: CyclicLR, OneCycleLR"),
    "lambda_lr": ("Your own function", "Your function of the epoch: "
                  "LambdaLR, MultiplicativeLR"),
    "composite": ("Combined", "Schedules made of schedules: SequentialLR, "
                  "ChainedScheduler"),
    "swalr": ("SWALR", "SWALR (torch.optim.swa_utils)"),
    "hf": ("Hugging Face", "Hugging Face transformers' warm-up schedules"),
    "noam": ("Noam", "Noam: the Transformer's learning rate"),
    "timm": ("timm", "timm's schedulers"),
    "with_warmup": ("Warm-up for any schedule",
                    "A warm-up in front of any schedule"),
    "plot": ("Plotting", "Plotting a schedule"),
}
#: README anchors that became site pages (for links inside moved sections)
ANCHOR_PAGES = {
    "migrating-from-tf-addons": "guides/tf-addons.md",
    "schedules": "schedules/index.md",
    "optimizers": "optimizers/index.md",
    "which-optimizer": "optimizers/index.md",
}

_written = set()
_warnings = []


def warn(message):
    """A build problem: printed, and a warning (fails --strict) in mkdocs."""
    _warnings.append(message)
    print("gen_pages: WARNING:", message, file=sys.stderr)


def write(rel, text):
    """Writes docs/<rel> when its content changed."""
    path = DOCS / rel
    _written.add(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text if isinstance(text, bytes) else text.encode()
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# README sections
# ---------------------------------------------------------------------------


def readme_sections():
    """{heading: body} of the README's level-2 sections (code fences
    respected)."""
    text = (ROOT / "README.md").read_text()
    sections, current, fence = {}, None, False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
            continue
        if current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() + "\n" for k, v in sections.items()}


def readme_intro():
    text = (ROOT / "README.md").read_text()
    return text.split("\n## ", 1)[0].split("\n", 1)[1].strip() + "\n"


def find_section(sections, prefix):
    for heading, body in sections.items():
        if heading.startswith(prefix):
            return heading, body
    warn(f"README has no section starting with {prefix!r}")
    return prefix, ""


def site_page(path):
    """The site page of a docs/src/ file (repository path), else None."""
    if not path.startswith("docs/src/"):
        return None
    rest = path[len("docs/src/"):]
    return "schedules/index.md" if rest == "schedules.md" else rest


def relink(markdown, page, base=""):
    """Makes the links of the README (``base`` ""), or of a docs/src/ page
    (``base`` its folder: links relative to the file, as GitHub reads them),
    valid on a site page ``page``."""
    depth = page.count("/")
    up = "../" * depth

    def fix(match):
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+:", target):
            return match.group(0)
        if target.startswith("#") and base:
            return match.group(0)  # an anchor on the same page
        if base or target.startswith("README.md#"):
            path, _, anchor = target.partition("#")
            path = os.path.normpath(os.path.join(base, path))
            target = ("#" + anchor if path == "README.md" and anchor
                      else path + ("#" + anchor if anchor else ""))
        path, _, anchor = target.partition("#")
        if site_page(path):
            if not (ROOT / path).is_file():
                warn(f"link to {path} (on {page}): no such file")
            return (f"[{label}]({up}{site_page(path)}"
                    + (f"#{anchor}" if anchor else "") + ")")
        if target.startswith("#"):
            slug = target[1:]
            if slug in ANCHOR_PAGES:
                return f"[{label}]({up}{ANCHOR_PAGES[slug]})"
            for name, title, headings, _ in TOPICS:
                for h in headings:
                    if slug.startswith(slugify(h)):
                        return f"[{label}]({up}topics/{name}.md)"
            return f"[{label}]({up}index.md#{slug})"
        if target.startswith("docs/"):
            return f"[{label}]({up}{target[5:]})"
        return f"{label} (`{target}`)" if label != target else f"`{target}`"

    return re.sub(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)", fix, markdown)


def relink_images(markdown, page, base=""):
    """Image links of the README (paths from the repository root, or from
    ``base``): docs/ images keep their file; others are copied into
    images/generated/."""
    up = "../" * page.count("/")

    def fix(match):
        label, target = match.group(1), match.group(2)
        if re.match(r"[a-z]+:", target):
            return match.group(0)
        target = os.path.normpath(os.path.join(base, target))
        if target.startswith("docs/"):
            return f"![{label}]({up}{target[5:]})"
        source = ROOT / target
        if not source.is_file():
            warn(f"image {target} (on {page}) does not exist")
            return label
        rel = "images/generated/" + target.replace("/", "-")
        write(rel, source.read_bytes())
        return f"![{label}]({up}{rel})"

    return re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", fix, markdown)


def slugify(text):
    text = re.sub(r"[^\w\s-]", "", text.lower()).strip()
    return re.sub(r"[\s]+", "-", text)


def demote(markdown):
    """README ``###`` headings become the page's ``##``."""
    out, fence = [], False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("###"):
            line = line[1:]
        out.append(line)
    return "\n".join(out) + "\n"


def from_readme(markdown, page):
    return relink(relink_images(demote(markdown), page), page)


def from_src(rel):
    """A docs/src/ page (``rel`` under docs/src/) with its links made valid
    on its site page."""
    page = site_page("docs/src/" + rel)
    base = os.path.dirname("docs/src/" + rel)
    text = (SRC / rel).read_text()
    return relink(relink_images(text, page, base), page, base)


# ---------------------------------------------------------------------------
# Docstrings
# ---------------------------------------------------------------------------


def description(cls):
    """The class docstring before its Args section."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    return re.split(r"\n(?:Args|Arguments|References|Example)s?:\n", doc)[0]


def math_blocks(text):
    return [b.strip() for b in re.findall(r"\$\$(.+?)\$\$", text, re.S)]


def split_equations(tex):
    """The top-level equations of a display formula: split at ``\\\\``,
    ``\\qquad`` and a ``\\quad`` after a comma or semicolon, outside braces,
    ``\\left…\\right`` and environments (the punctuation stays with its
    equation), so that a docstring's line of several equations becomes
    several narrow rows on the page."""
    parts, start, depth, i = [], 0, 0, 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            match = re.match(r"\\(left|right|begin|end)(?![a-zA-Z])|"
                             r"\\q?quad(?![a-zA-Z])|\\\\|\\[\s\S]?", tex[i:])
            word = match.group(0)
            if word in ("\\left", "\\begin"):
                depth += 1
            elif word in ("\\right", "\\end"):
                depth -= 1
            elif depth == 0 and (word in ("\\qquad", "\\\\") or (
                    word == "\\quad" and tex[start:i].rstrip()[-1:] in ",;")):
                parts.append(tex[start:i])
                start = i + len(word)
            i += len(word)
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        i += 1
    parts.append(tex[start:])
    parts = [" ".join(p.split()) for p in parts]
    return [p for p in parts if p not in ("", ",", "\\,")]


def update_rule(cls):
    """The docstring's display math as one block, one equation per row
    (gathered), so that a long rule does not run off the column."""
    blocks = math_blocks(description(cls))
    if not blocks:
        return None
    rows = [row for block in blocks for row in split_equations(block)]
    if len(rows) == 1:
        return "$$\n" + rows[0] + "\n$$\n"
    return ("$$\n\\begin{gathered}\n" + " \\\\\n".join(rows)
            + "\n\\end{gathered}\n$$\n")


def reference_line(cls):
    """The docstring's first sentence: the named reference with version."""
    first = description(cls).split("\n\n")[0]
    return " ".join(first.split())


def differs_notes(cls):
    """Paragraphs saying how the class differs from keras.optimizers.X."""
    notes = []
    for para in description(cls).split("\n\n"):
        flat = " ".join(para.split())
        match = re.search(r"Differs from `?(keras\.optimizers\.\w+)`?", flat)
        if match:
            notes.append((match.group(1), flat))
    return notes


# ---------------------------------------------------------------------------
# Results files
# ---------------------------------------------------------------------------


def load_results(pattern):
    out = []
    for path in sorted(glob.glob(str(ROOT / "benchmarks" / "results"
                                     / pattern))):
        try:
            out.append((pathlib.Path(path).name, json.loads(
                pathlib.Path(path).read_text())))
        except (OSError, ValueError) as error:
            warn(f"cannot read {path}: {error}")
    return out


#: the backends in the order the deviation table lists them
BACKENDS = ("tensorflow", "jax", "torch")


def measured_by(data):
    """The commit (12 digits, "+ local edits" when it was dirty) and date."""
    commit = str(data.get("commit", "unknown"))
    dirty = commit.endswith("-dirty")
    commit = commit[:-len("-dirty")] if dirty else commit
    return (f"`{commit[:12]}`" + (" + local edits" if dirty else "")
            + f", {data.get('date', '?')}")


def deviation_rows(names):
    """(header, rows, references, commands): one row per backend and name
    (the spec names of ``names`` in benchmarks/results/deviation_*.json),
    a column per mode, the measuring commit in the last column."""
    found = {}
    for fname, data in load_results("deviation_*.json"):
        for name in names:
            entry = data.get("optimizers", {}).get(name)
            if entry:
                found.setdefault(data.get("backend", fname), []).append(
                    (name, entry, data))
    modes = sorted({m for items in found.values() for _, e, _ in items
                    for m in e["max_deviation"]},
                   reverse=True)  # eager, compiled
    several = len({n for items in found.values() for n, _, _ in items}) > 1
    rows, references, commands = [], set(), []
    for backend in sorted(found, key=lambda b: (
            BACKENDS.index(b) if b in BACKENDS else len(BACKENDS), b)):
        for name, entry, data in found[backend]:
            devs = entry["max_deviation"]
            rows.append([backend] + ([f"`{name}`"] if several else [])
                        + [f"{devs[m]:.2e}" if m in devs else "—"
                           for m in modes] + [measured_by(data)])
            references.add(entry["reference"])
            command = data["command"].replace(
                f"KERAS_BACKEND={backend} ", "KERAS_BACKEND=<backend> ")
            if command not in commands:
                commands.append(command)
    header = (["backend"] + (["name"] if several else [])
              + [f"{m} (max)" for m in modes] + ["measured at commit"])
    return header, rows, sorted(references), commands


def state_bytes_rows(cls, names):
    rows = []
    for fname, data in load_results("memory_*.json"):
        for rec in data.get("records", []):
            if rec.get("optimizer") == cls.__name__ and not rec.get("kwargs"):
                ref = rec.get("torch_reference") or "optax"
                ref_bytes = rec.get("torch_state_bytes_per_param",
                                    rec.get("optax_state_bytes_per_param"))
                rows.append([data["backend"], f"{rec['state_bytes_per_param']:.2f}",
                             f"{ref_bytes:.2f} ({ref})" if ref_bytes is not None
                             else "—", fname])
    if not rows:
        for fname, data in load_results("step_time*.json"):
            for step in data.get("steps", []):
                if step["optimizer"] in names and step["impl"] == "zoo" \
                        and step.get("state_bytes_per_param") is not None:
                    rows.append([data["backend"],
                                 f"{step['state_bytes_per_param']:.2f}", "—",
                                 fname])
                    break
    return rows


def step_time_rows(names):
    rows = []
    for fname, data in load_results("step_time*.json"):
        steps = [s for s in data.get("steps", []) if s["optimizer"] in names]
        if not steps:
            continue
        biggest = max(steps, key=lambda s: (s["n_params"], -s["n_tensors"]))
        case = [s for s in steps if s["case"] == biggest["case"]
                and s["optimizer"] == biggest["optimizer"]]
        zoo = [s for s in case if s["impl"] == "zoo"]
        if not zoo:
            continue
        for peer in case:
            if peer["impl"].startswith("zoo"):
                continue
            rows.append([data["backend"], f"`{biggest['optimizer']}`",
                         biggest["case"], peer["impl"],
                         f"{zoo[0]['median_ms'] / peer['median_ms']:.2f}×",
                         fname])
    return rows


# ---------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------


def _source_hash(*objects):
    h = hashlib.sha1()
    for obj in objects:
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):
            h.update(repr(obj).encode())
    return h.hexdigest()[:10]


def trajectory_picture(cls, name):
    """images/generated/<name>-<hash>.png: the playground's trajectories of
    ``name`` and the baseline, or None when the playground cannot run it."""
    import keras_optzoo.playground as pg

    key = _source_hash(sys.modules[cls.__module__], pg.trajectory, pg.plot)
    rel = f"images/generated/traj-{name}-{key}.png"
    if (DOCS / rel).exists():
        _written.add(DOCS / rel)
        return rel
    try:
        import matplotlib

        matplotlib.use("Agg")
        results = pg.compare([name, PLAYGROUND_BASELINE]
                             if name != PLAYGROUND_BASELINE else [name],
                             PLAYGROUND_FUNCTION, steps=PLAYGROUND_STEPS)
        IMAGES.mkdir(parents=True, exist_ok=True)
        pg.plot_comparison(PLAYGROUND_FUNCTION, results, DOCS / rel, dpi=60)
    except Exception as error:  # the page says why there is no picture
        return f"error: {type(error).__name__}: {error}"
    _written.add(DOCS / rel)
    return rel


def schedule_cases():
    """{class name: (case id, factory, steps)} from the schedule tests'
    cases (the first case per class); empty when they cannot be imported
    (they need torch, transformers and timm)."""
    sys.path.insert(0, str(ROOT / "tests"))
    found = {}
    for module in ("_sched_helpers", "_hf_sched_cases", "_timm_sched_cases"):
        try:
            mod = __import__(module)
        except Exception as error:
            print(f"gen_pages: no schedule cases from {module}: {error}",
                  file=sys.stderr)
            continue
        for case in mod.CASES:
            try:
                schedule = case.ours()
            except Exception:
                continue
            steps = getattr(case, "epochs", None)
            if steps is not None:
                steps = steps * getattr(case, "spe", 1)
            else:
                steps = case.steps
                if not isinstance(steps, int):
                    steps = int(min(max(list(steps)) + 1, 2000))
            found.setdefault(type(schedule).__name__,
                             (case.id, case.ours, max(int(steps), 2)))
    return found


def schedule_picture(name, case):
    import keras_optzoo.schedules as S

    case_id, factory, steps = case
    key = _source_hash(getattr(S, name), S.plot)
    rel = f"images/generated/sched-{name}-{slugify(case_id)}-{key}.png"
    if not (DOCS / rel).exists():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 2.6))
        S.plot(factory(), steps, ax=ax, label=case_id)
        ax.set_title(f"{name}: test case {case_id}")
        fig.tight_layout()
        IMAGES.mkdir(parents=True, exist_ok=True)
        fig.savefig(DOCS / rel, dpi=70)
        plt.close(fig)
    _written.add(DOCS / rel)
    return rel


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


def signature(cls):
    params = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            params.append("**kwargs")
        elif p.default is p.empty:
            params.append(p.name)
        else:
            params.append(f"{p.name}={p.default!r}")
    body = ",\n    ".join(params)
    return f"keras_optzoo.{cls.__name__}(\n    {body},\n)"


def optimizer_page(cls, entries, pictures=True):
    names = [e.name for e in entries]
    own = [e for e in entries if not e.preset]
    slug = own[0].name if own else names[0]
    lines = [f"# {cls.__name__}\n", f"{entries[0].summary}.\n" if own else "",
             f"**Reference:** {reference_line(cls)}\n"]
    for keras_name, note in differs_notes(cls):
        lines.append(f'!!! warning "Differs from {keras_name}"\n')
        lines.append(textwrap.indent(note, "    ") + "\n")
    lines.append("## Signature\n")
    lines.append("```python\n" + signature(cls) + "\n```\n")
    rule = update_rule(cls)
    lines.append("## Update rule\n")
    lines.append(rule if rule else
                 "The docstring below states the algorithm in words.\n")
    lines.append("## Registry names and presets\n")
    lines.append(table(["`oz.get` name", "preset arguments", "what it is"], [
        [f"`{e.name}`", ", ".join(f"`{k}={v!r}`" for k, v in e.kwargs.items())
         or "—", e.summary] for e in entries]))
    lines.append("## Measured deviation from the reference\n")
    header, rows, references, commands = deviation_rows(names)
    if rows:
        lines.append("max |θ − θ_ref| / max |θ_ref − θ₀|, the largest over "
                     "the test configurations: float32, 60 steps with a "
                     "mid-run learning-rate change, against "
                     + ", ".join(f"`{r}`" for r in references)
                     + "; the tests require ≤ 1e-5. *compiled*: the step "
                     "under `jax.jit` (JAX) or `tf.function(jit_compile="
                     "True)` (TensorFlow), every configuration; *eager*: op "
                     "by op, every configuration on torch (which has no "
                     "compiled step of this kind), the first one on JAX "
                     "and TensorFlow.\n")
        lines.append(table(header, rows))
        lines.append("Measured with " + ", ".join(f"`{c}`" for c in commands)
                     + " (`benchmarks/results/deviation_<backend>.json`).\n")
    else:
        lines.append("Not in `benchmarks/results/deviation_*.json` yet "
                     "(`python benchmarks/optimizer_deviation.py "
                     "--json-out`).\n")
    lines.append("## State and step time\n")
    rows = state_bytes_rows(cls, names)
    if rows:
        lines.append("State bytes per parameter (float32 weights):\n")
        lines.append(table(["backend", "keras-optzoo", "reference",
                            "source"], rows))
    else:
        lines.append("No memory measurement in benchmarks/results yet.\n")
    rows = step_time_rows(names)
    if rows:
        lines.append("\nStep time, keras-optzoo ÷ peer (median of "
                     "interleaved rounds; below 1 the zoo is faster; see "
                     "[Performance](../topics/performance.md) for the "
                     "machine and its load):\n")
        lines.append(table(["backend", "name", "case", "peer", "ratio",
                            "source"], rows))
    else:
        lines.append("\nNo step-time measurement in benchmarks/results "
                     "yet.\n")
    lines.append("## Trajectory\n")
    picture, shown = "skipped", slug
    for name in names if pictures else ():
        picture = trajectory_picture(cls, name)
        if picture.startswith("images/"):
            shown = name
            break
    if picture.startswith("images/"):
        lines.append(f"`{shown}` and `{PLAYGROUND_BASELINE}` on the "
                     f"playground's `{PLAYGROUND_FUNCTION}` surface, "
                     f"{PLAYGROUND_STEPS} steps, playground learning rates "
                     "(`python -m keras_optzoo.playground`):\n")
        lines.append(f"![{shown} trajectory](../{picture}){{ loading=lazy }}\n")
    else:
        lines.append(f"No playground picture: {picture}.\n")
    lines.append("## API\n")
    lines.append(f"::: keras_optzoo.{cls.__name__}\n"
                 "    options:\n      show_root_heading: false\n"
                 "      heading_level: 3\n")
    return slug, "\n".join(lines)


def optimizer_pages(pictures=True):
    from keras_optzoo import registry

    groups = {}
    for entry in registry.entries():
        groups.setdefault(entry.cls, []).append(entry)
    index_rows, nav = [], []
    for cls in registry.classes():
        entries = sorted(groups[cls], key=lambda e: (e.preset, e.name))
        slug, text = optimizer_page(cls, entries, pictures)
        write(f"optimizers/{slug}.md", text)
        nav.append({cls.__name__: f"optimizers/{slug}.md"})
    for entry in registry.entries():
        slug = next(e.name for e in sorted(
            groups[entry.cls], key=lambda e: (e.preset, e.name)))
        index_rows.append([f"[`{entry.name}`]({slug}.md)",
                           f"`{entry.cls.__name__}`",
                           ", ".join(f"{k}={v!r}" for k, v in
                                     entry.kwargs.items()) or "—",
                           entry.summary])
    sections = readme_sections()
    _, which = find_section(sections, "Optimizers")
    which = which.split("### Which optimizer", 1)
    text = ("# Optimizers\n\nOne page per class, generated from the "
            "registry (`keras_optzoo.registry`) and "
            "`benchmarks/results/`.\n\n"
            + table(["name", "class", "preset arguments", "what it is"],
                    index_rows))
    if len(which) == 2:
        text += "\n## Which optimizer\n" + from_readme(
            which[1], "optimizers/index.md")
    write("optimizers/index.md", text)
    return [{"Optimizers": ["optimizers/index.md"]
             + sorted(nav, key=lambda d: next(iter(d)).lower())}]


def schedule_pages(pictures=True):
    import keras_optzoo.schedules as S

    cases = schedule_cases() if pictures else {}
    families = {}
    for name in sorted(dir(S)):
        obj = getattr(S, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and \
                obj.__module__.startswith("keras_optzoo.schedules."):
            families.setdefault(obj.__module__.rsplit(".", 1)[1],
                                []).append(name)
    order = list(SCHEDULE_FAMILIES)
    nav, rows = [], []
    for family, names in sorted(
            families.items(), key=lambda kv: (
                order.index(kv[0]) if kv[0] in order else len(order), kv[0])):
        module = sys.modules[f"keras_optzoo.schedules.{family}"]
        short, title = SCHEDULE_FAMILIES.get(family) or (2 * (
            (module.__doc__ or family).strip().splitlines()[0].rstrip("."),))
        lines = [f"# {title}\n",
                 f"Module `keras_optzoo.schedules.{family}`; every name is "
                 "exported as `oz.schedules.<name>`.\n"]
        for name in names:
            lines.append(f"## {name}\n")
            if name in cases:
                rel = schedule_picture(name, cases[name])
                lines.append(f"![{name}](../{rel}){{ loading=lazy }}\n")
            else:
                lines.append("*(No plot: no test case builds this class, "
                             "or the test oracles are not installed.)*\n")
            lines.append(f"::: keras_optzoo.schedules.{name}\n"
                         "    options:\n      show_root_heading: false\n"
                         "      heading_level: 3\n")
            rows.append([f"[`{name}`]({family}.md#{name.lower()})",
                         f"[{short}]({family}.md)"])
        write(f"schedules/{family}.md", "\n".join(lines))
        nav.append({short: f"schedules/{family}.md"})
    # docs/src/schedules.md, the class table after its title
    title, _, body = from_src("schedules.md").partition("\n")
    write("schedules/index.md", title + "\n\n"
          + table(["class", "page"], rows) + "\n" + body.lstrip("\n"))
    return [{"Schedules": ["schedules/index.md"] + nav}]


def memory_table():
    rows = []
    for fname, data in load_results("memory_*.json"):
        for rec in data.get("records", []):
            ref = rec.get("torch_reference", "optax")
            ref_bytes = rec.get("torch_state_bytes_per_param",
                                rec.get("optax_state_bytes_per_param"))
            rows.append([data["backend"], rec["optimizer"],
                         ", ".join(f"{k}={v!r}" for k, v in
                                   rec.get("kwargs", {}).items()) or "—",
                         f"{rec['state_bytes_per_param']:.2f}",
                         "—" if ref_bytes is None else
                         f"{ref_bytes:.2f} ({ref})"])
    return table(["backend", "optimizer", "arguments", "state B/param",
                  "reference state B/param"], rows)


def topic_pages():
    sections = readme_sections()
    nav = []
    for name, title, headings, objects in TOPICS:
        page = f"topics/{name}.md"
        if (SRC / "topics" / f"{name}.md").exists():
            lines = [from_src(f"topics/{name}.md")]
        else:
            lines = [f"# {title}\n"]
        for heading in headings:
            if heading.startswith("?"):
                heading = heading[1:]
                if not any(h.startswith(heading) for h in sections):
                    continue
            full, body = find_section(sections, heading)
            if len(headings) > 1:
                lines.append(f"## {full}\n")
            lines.append(from_readme(body, page))
        if name == "performance":
            tables = ROOT / "benchmarks" / "results" / "tables.md"
            if tables.exists():
                text = tables.read_text()
                text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
                text = re.sub(r"^# .*$", "", text, count=1, flags=re.M)
                lines.append("## Benchmark tables (benchmarks/results/"
                             "tables.md)\n")
                lines.append(relink(relink_images(
                    demote(text), page, "benchmarks/results"), page))
        if name == "memory":
            lines.append("State each optimizer keeps, per parameter, from "
                         "`benchmarks/results/memory_*.json` "
                         "(`python benchmarks/memory.py`):\n")
            lines.append(memory_table())
        for obj in objects:
            lines.append(f"::: {obj}\n")
        write(page, "\n".join(lines))
        nav.append({title: page})
    return [{"Topics": nav}]


def api_pages():
    import keras_optzoo

    modules = ["keras_optzoo", "keras_optzoo.optimizers",
               "keras_optzoo.schedules", "keras_optzoo.callbacks",
               "keras_optzoo.param_groups", "keras_optzoo.layout",
               "keras_optzoo.playground", "keras_optzoo.registry"]
    text = ["# API index\n",
            "Every public name of `keras_optzoo` and the page that "
            "documents it.\n"]
    rows = []
    for name in sorted(keras_optzoo.__all__):
        rows.append([f"`oz.{name}`", documented_at(name)])
    text.append(table(["name", "documented on"], rows))
    write("api/index.md", "\n".join(text))
    nav = ["api/index.md"]
    for module in modules[1:]:
        short = module.split(".")[1]
        # the registry's functions are documented here; the other modules'
        # members on their own pages
        members = "" if short == "registry" else "      members: false\n"
        write(f"api/{short}.md", f"# {module}\n\n::: {module}\n"
              "    options:\n      show_root_heading: false\n" + members)
        nav.append({short: f"api/{short}.md"})
    return [{"API": nav}]


def documented_at(name):
    """The page documenting ``keras_optzoo.<name>`` (a markdown link)."""
    import keras_optzoo
    from keras_optzoo import registry

    obj = getattr(keras_optzoo, name)
    for entry in registry.entries():
        if entry.cls is obj and not entry.preset:
            return f"[{entry.cls.__name__}](../optimizers/{entry.name}.md)"
    if inspect.ismodule(obj):
        short = obj.__name__.split(".")[-1]
        if (DOCS / "api" / f"{short}.md") in _written or short in (
                "optimizers", "schedules", "callbacks", "param_groups",
                "layout", "playground"):
            return f"[{obj.__name__}]({short}.md)"
    for tname, title, _, objects in TOPICS:
        if f"keras_optzoo.{name}" in objects:
            return f"[{title}](../topics/{tname}.md)"
    if name in ("get", "list_optimizers"):
        return "[registry](registry.md)"
    return "MISSING"


def guide_pages():
    """docs/src/guides/*.md with their ``<!-- table: NAME -->`` markers
    filled by docs/mapping.py's tables."""
    sys.path.insert(0, str(DOCS))
    import mapping

    nav = []
    sections = readme_sections()
    for src in sorted((SRC / "guides").glob("*.md")):
        text = from_src(f"guides/{src.name}")

        def fill(match):
            kind, arg = match.group(1), match.group(2)
            if kind == "table":
                return mapping.TABLES[arg]()
            _, body = find_section(sections, arg)
            return from_readme(body, f"guides/{src.name}")

        text = re.sub(r"<!-- (table|readme): (.+?) -->", fill, text)
        write(f"guides/{src.name}", text)
        title = text.splitlines()[0].lstrip("# ").strip()
        nav.append({title: f"guides/{src.name}"})
    return [{"Guides": nav}]


def index_page():
    sections = readme_sections()
    text = ["# keras-optzoo\n", relink(readme_intro(), "index.md")]
    for heading in ("Why", "Install", "Quickstart", "Documentation"):
        full, body = find_section(sections, heading)
        text.append(f"## {full}\n")
        text.append(from_readme(body, "index.md"))
    write("index.md", "\n".join(text))
    return ["index.md"]


def clean():
    """Removes generated files that this run did not write (stale pages)."""
    for rel in GENERATED:
        path = DOCS / rel
        files = [path] if path.is_file() else (
            path.rglob("*") if path.is_dir() else [])
        for f in list(files):
            if f.is_file() and f not in _written:
                f.unlink()


def generate(pictures=None):
    """Writes every generated page; returns (nav, warnings)."""
    if pictures is None:
        pictures = os.environ.get("OZ_DOCS_PICTURES", "1") != "0"
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, str(ROOT))
    _written.clear()
    _warnings.clear()
    nav = index_page()
    nav += guide_pages()
    nav += optimizer_pages(pictures)
    nav += schedule_pages(pictures)
    nav += topic_pages()
    nav += api_pages()
    clean()
    return nav, list(_warnings)


if __name__ == "__main__":
    _, problems = generate()
    print(f"gen_pages: {len(_written)} files under docs/, "
          f"{len(problems)} warning(s)")
    sys.exit(1 if problems else 0)
