"""The documentation site: strict build, public symbols, math, a browser.

The site does not depend on the Keras backend (its pages come from the
registry, docstrings and results files; the torch and JAX builds were
compared file by file and are identical), so it is built and checked on the
torch backend only, whose run is the shortest of the three (CI runs them
side by side); the TensorFlow and JAX runs skip this module with that
reason. The browser check needs Debian's `chromium` (.ci/run installs it).
"""

import html
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the documentation site is backend-independent: it is built and "
           "checked once, in the torch run")


def _chromium():
    path = os.environ.get("OZ_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if path is None and os.environ.get("CI"):
        pytest.fail("chromium is not installed (.ci/run installs Debian's)")
    if path is None:
        pytest.skip("chromium is not installed here (CI installs it)")
    return path


def _browser(args, tmp_path):
    cmd = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
           f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000"] + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_MKDOCS_2_WARNING="1",
               MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
         "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_strict_build_has_a_page_per_optimizer(site):
    from keras_optzoo import registry

    for entry in registry.entries():
        if not entry.preset:
            page = site / "optimizers" / f"{entry.name}.html"
            assert page.exists(), page
            text = page.read_text()
            assert "Update rule" in text and "Reference:" in text


def _ids(site):
    ids = set()
    for page in site.rglob("*.html"):
        ids.update(re.findall(r'id="(keras_optzoo[\w.]*)"', page.read_text()))
    return ids


def test_every_public_symbol_is_documented(site):
    import keras_optzoo
    import keras_optzoo.playground

    ids = _ids(site)
    missing = []
    modules = [keras_optzoo, keras_optzoo.schedules, keras_optzoo.callbacks,
               keras_optzoo.playground, keras_optzoo.param_groups,
               keras_optzoo.layout]
    for module in modules:
        names = getattr(module, "__all__", None) or [
            n for n in vars(module) if not n.startswith("_")
            and getattr(vars(module)[n], "__module__", "").startswith(
                module.__name__)]
        for name in names:
            obj = getattr(module, name)
            if hasattr(obj, "__file__"):  # a module: its API page
                short = obj.__name__.rsplit(".", 1)[1]
                if not (site / "api" / f"{short}.html").exists():
                    missing.append(obj.__name__)
                continue
            candidates = {f"{module.__name__}.{name}",
                          f"{getattr(obj, '__module__', '')}.{name}"}
            if not candidates & ids:
                missing.append(f"{module.__name__}.{name}")
    assert not missing, (
        "public names with no documentation on the site (add them to a "
        f"page in docs/gen_pages.py): {missing}")


def _formulas(site):
    formulas = []
    for page in sorted(site.rglob("*.html")):
        for m in re.finditer(
                r'<(span|div) class="arithmatex">(.*?)</\1>',
                page.read_text(), re.S):
            tex = html.unescape(m.group(2)).strip()
            formulas.append((page.relative_to(site).as_posix(), tex))
    return formulas


def test_every_formula_is_accepted_by_katex(site, tmp_path):
    formulas = _formulas(site)
    assert len(formulas) > 50
    page = tmp_path / "check.html"
    katex = (site / "assets" / "katex" / "katex.min.js").as_uri()
    page.write_text(f"""<!doctype html><html><body><pre id="out"></pre>
<script src="{katex}"></script><script>
var formulas = {json.dumps(formulas)};
var bad = [];
formulas.forEach(function (f) {{
  var tex = f[1], display = tex.indexOf("\\\\[") === 0;
  tex = tex.slice(2, -2);
  try {{ katex.renderToString(tex, {{displayMode: display, output: "mathml",
                                   throwOnError: true, strict: "ignore"}}); }}
  catch (e) {{ bad.push([f[0], f[1], String(e)]); }}
}});
document.getElementById("out").textContent =
  "RESULT" + JSON.stringify({{n: formulas.length, bad: bad}}) + "END";
</script></body></html>""")
    result = _browser(["--dump-dom", page.as_uri()], tmp_path)
    match = re.search(r"RESULT(.*?)END", html.unescape(result.stdout), re.S)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    data = json.loads(match.group(1))
    assert data["n"] == len(formulas)
    assert not data["bad"], data["bad"][:10]


def test_browser_renders_an_optimizer_page(site, tmp_path):
    from keras_optzoo import registry

    name = next(e.name for e in registry.entries() if not e.preset
                and "$$" in (e.cls.__doc__ or ""))
    page = site / "optimizers" / f"{name}.html"
    result = _browser(["--dump-dom", page.as_uri()], tmp_path)
    dom = result.stdout
    assert dom.count("<math") >= 3, dom[-2000:]
    assert "katex-error" not in dom
    # every arithmatex element was replaced by KaTeX's output
    assert not re.search(r'class="arithmatex">\\[\[(]', dom)
    console = [line for line in result.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line]
    errors = [line for line in console
              if re.search(r"error|uncaught|failed", line, re.I)]
    assert not errors, errors


def _code_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


@pytest.mark.parametrize(
    "guide", sorted(p.name for p in (ROOT / "docs" / "src" / "guides")
                    .glob("*.md")))
def test_guide_code_blocks_run(guide):
    for i, block in enumerate(
            _code_blocks(ROOT / "docs" / "src" / "guides" / guide)):
        exec(compile(block, f"{guide} block {i}", "exec"), {})


def test_optimizer_pages_show_the_measured_deviation_per_backend(site):
    """Each optimizer page has a row per backend that measured it
    (benchmarks/results/deviation_<backend>.json), with the commit."""
    from keras_optzoo import registry

    results = {}
    for path in (ROOT / "benchmarks" / "results").glob("deviation_*.json"):
        data = json.loads(path.read_text())
        results[data["backend"]] = data
    assert results, "no benchmarks/results/deviation_*.json"
    missing = []
    for entry in registry.entries():
        if entry.preset:
            continue
        text = (site / "optimizers" / f"{entry.name}.html").read_text()
        section = text.split('id="measured-deviation-from-the-reference"',
                             1)[1].split("<h2", 1)[0]
        for backend, data in results.items():
            if entry.name not in data["optimizers"]:
                continue
            if not re.search(rf"<td>{backend}</td>(?:(?!</tr>).)*?<code>"
                             rf"{data['commit'][:12]}</code>", section, re.S):
                missing.append(f"{entry.name} on {backend}")
    assert not missing, missing


def _relative_links(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if not re.match(r"[a-z]+:|#", target):
            yield target.split("#", 1)[0]


def test_readme_and_docs_src_links_resolve_on_github():
    """The README links to the reference pages in docs/src/, and those pages
    link to each other and to the repository's files relative to
    themselves, as GitHub resolves them (the site build rewrites them)."""
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs" / "src").rglob(
        "*.md"))
    broken = [f"{page.relative_to(ROOT)}: {target}" for page in pages
              for target in _relative_links(page)
              if not (page.parent / target).exists()]
    assert not broken, broken
