"""Every ```python block of README.md and of the reference pages moved out
of it (docs/src/topics/*.md, docs/src/schedules.md) runs, on the active
backend. (The guides' blocks, docs/src/guides/, run in tests/test_docs.py.)

How the blocks run (a reader's view of the README, made checkable):

* The blocks of one README ``##`` section, or of one docs/src page, run in
  order in one namespace, as a reader reads them: a later block may use what
  an earlier one of the same section (page) defined. Each section starts
  from a fresh namespace holding ``keras``, ``np`` (numpy), ``oz``
  (keras_optzoo) and the helpers below, in its own temporary working
  directory (files a block saves go there).
* HTML comments right before a block (blank lines between are allowed)
  steer the test and are invisible on the rendered page:

  - ``<!-- not-run: REASON -->``: the block is not run. The reason is
    required (say where the code is tested instead, or why it cannot run
    here: several devices, processes, a download).
  - ``<!-- readme-test: setup: CODE -->``: CODE runs before the block, in
    its namespace (data and models the block takes as given). It may span
    several lines.
  - ``<!-- readme-test: replace: OLD => NEW -->``: OLD (which must occur in
    the block) is replaced by NEW before it runs: to run a 100-epoch
    recipe for 3 epochs.

* Helpers for setups: ``digits(n=256, offset=0)`` -> ``(x, y)`` (scikit-learn's
  digits, float32 in [0, 1] and int32 labels), ``digits_batches(n=64,
  batch_size=32, offset=0)`` (a ``keras.utils.PyDataset`` of ``(x, y)``
  batches, with ``len``), ``digits_model()`` (an uncompiled
  ``Sequential``: Input(64), Dense(16, relu), Dense(10, name="head")).

A new README section or docs/src/topics page needs nothing here: its blocks
run; give them the comments above where they need context.
"""

import pathlib
import re

import keras
import numpy as np
import pytest

import keras_optzoo as oz

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: the reference pages that were README sections: their blocks run here, on
#: every backend, as they did in the README
PAGES = sorted((ROOT / "docs" / "src" / "topics").glob("*.md")) + [
    ROOT / "docs" / "src" / "schedules.md"]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)


class Block:
    def __init__(self, section, line, code, file="README.md"):
        self.section = section
        self.line = line
        self.code = code
        self.file = file
        self.skip = None
        self.setup = []
        self.replace = []


def _directives(text):
    """The HTML comments ending ``text`` (only blank lines after them)."""
    out = []
    rest = text.rstrip()
    while rest.endswith("-->"):
        start = rest.rfind("<!--")
        if start < 0:
            break
        out.insert(0, rest[start + 4:-3].strip())
        rest = rest[:start].rstrip()
    return out


def blocks(text=None, page=None):
    """Every ```python block of the README with its directives; of a page
    (``page``: its path from the repository root) when ``page`` is given,
    all of them in the one section ``page``."""
    text = README.read_text() if text is None else text
    lines = text.splitlines()
    out, section, i = [], page or "(top)", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## ") and page is None:
            section = line[3:].strip()
        match = _FENCE.match(line)
        if not match:
            i += 1
            continue
        indent, lang = match["indent"], match["lang"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang == "python":
            body = [l[len(indent):] if l.startswith(indent) else l
                    for l in lines[i + 1:end]]
            block = Block(section, i + 1, "\n".join(body) + "\n",
                          page or "README.md")
            for directive in _directives("\n".join(lines[:i])):
                _apply(block, directive)
            out.append(block)
        i = end + 1
    return out


def _apply(block, directive):
    if directive.startswith("not-run:"):
        block.skip = directive[len("not-run:"):].strip()
    elif directive.startswith("readme-test:"):
        kind, _, value = directive[len("readme-test:"):].strip().partition(
            ":")
        kind = kind.strip()
        if kind == "setup":
            block.setup.append(value.strip("\n"))
        elif kind == "replace":
            old, sep, new = value.partition("=>")
            assert sep, (f"{block.file} line {block.line}: replace needs "
                         "OLD => NEW")
            block.replace.append((old.strip(), new.strip()))
        else:
            raise AssertionError(
                f"{block.file} line {block.line}: unknown directive {kind!r}")


def _dedent(code):
    """Setup code: its first line starts after ``setup:``, the others carry
    the comment's indentation."""
    import textwrap

    first, _, rest = code.strip("\n").partition("\n")
    return (first.strip() + "\n" + textwrap.dedent(rest)).strip("\n") + "\n"


# ------------------------------------------------------------- helpers
def digits(n=256, offset=0):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x[offset:offset + n] / 16.0).astype("float32")
    return x, y[offset:offset + n].astype("int32")


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        part = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[part], self.y[part]


def digits_batches(n=64, batch_size=32, offset=0):
    return _Batches(*digits(n, offset), batch_size)


def digits_model():
    return keras.Sequential([keras.Input((64,)),
                             keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(10, name="head")])


def _namespace():
    return {"__name__": "readme", "keras": keras, "np": np, "oz": oz,
            "digits": digits, "digits_batches": digits_batches,
            "digits_model": digits_model}


# ---------------------------------------------------------------- tests
def _sections():
    out = {}
    found = blocks() + [
        b for path in PAGES for b in blocks(
            path.read_text(), path.relative_to(ROOT).as_posix())]
    for block in found:
        out.setdefault(block.section, []).append(block)
    return out


SECTIONS = _sections()
#: the sections with a block to run (the others are all `not-run`)
RUN = [name for name, found in SECTIONS.items()
       if any(b.skip is None for b in found)]


def test_readme_has_python_blocks_and_skips_give_reasons():
    all_blocks = [b for bs in SECTIONS.values() for b in bs]
    assert len(all_blocks) >= 10
    for block in all_blocks:
        if block.skip is not None:
            assert len(block.skip) > 10, (
                f"{block.file} line {block.line}: `not-run` needs a reason")


def test_parser_reads_directives_and_indented_blocks():
    text = (
        "## A\n<!-- not-run: needs four devices -->\n\n```python\nx\n```\n"
        "- item\n\n  <!-- readme-test: setup: a = 1\n  b = 2 -->\n"
        "  <!-- readme-test: replace: 100 => 3 -->\n  ```python\n"
        "  print(a + b, 100)\n  ```\n## B\n```bash\nls\n```\n")
    found = blocks(text)
    assert [b.section for b in found] == ["A", "A"]
    assert found[0].skip == "needs four devices"
    assert found[1].code == "print(a + b, 100)\n"
    assert found[1].replace == [("100", "3")]
    assert _dedent(found[1].setup[0]) == "a = 1\nb = 2\n"


@pytest.mark.parametrize("section", RUN)
def test_readme_section_runs(section, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    namespace = _namespace()
    ran = 0
    for block in SECTIONS[section]:
        if block.skip is not None:
            continue
        code = block.code
        for old, new in block.replace:
            assert old in code, (
                f"{block.file} line {block.line}: {old!r} (a replace "
                "directive) is not in the block")
            code = code.replace(old, new)
        for setup in block.setup:
            exec(compile(_dedent(setup), f"{block.file}:{block.line}:setup",
                         "exec"), namespace)
        exec(compile(code, f"{block.file}:{block.line}", "exec"), namespace)
        ran += 1
    assert ran
