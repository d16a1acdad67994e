"""MkDocs hook (a plain Python file; Zensical reads the same mkdocs.yml).

on_config runs docs/gen_pages.py (pages from the registry, the docstrings,
the README and benchmarks/results) and sets the navigation it returns;
on_files adds the KaTeX script from the installed sphinxcontrib-katex
package (nothing vendored).
"""

import importlib.util
import logging
import pathlib
import sys

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.keras_optzoo")
DOCS = pathlib.Path(__file__).resolve().parent


def katex_js():
    """The KaTeX bundle shipped in the sphinxcontrib-katex wheel."""
    spec = importlib.util.find_spec("sphinxcontrib.katex")
    if spec is None:
        raise RuntimeError(
            "the docs need sphinxcontrib-katex for KaTeX: pip install "
            "-e '.[docs]'")
    return pathlib.Path(spec.origin).parent / "katex.min.js"


def on_config(config):
    sys.path.insert(0, str(DOCS))
    import gen_pages

    nav, problems = gen_pages.generate()
    for problem in problems:
        log.warning(problem)  # fails `mkdocs build --strict`
    config["nav"] = nav
    return config


def on_files(files, config):
    files.append(File.generated(config, "assets/katex/katex.min.js",
                                abs_src_path=str(katex_js())))
    return files
