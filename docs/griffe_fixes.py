"""Griffe extension: docstrings as the site renders them.

- Sphinx roles (:class:`X`, :func:`f`, :meth:`m`, :mod:`m`...) become code
  spans instead of printing literally.
- Display math ($$ ... $$) gets blank lines around it, so that consecutive
  blocks and a block glued to a paragraph each render as their own display.
"""

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|ref)"
                   r":`~?([^`]+)`")


def fix_docstring(text):
    text = _ROLE.sub(r"`\1`", text)
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        stripped = line.strip()
        opens = stripped.startswith("$$") and not inside
        if opens:
            if out and out[-1].strip():
                out.append("")
            inside = not (stripped.endswith("$$") and len(stripped) > 2
                          and stripped.count("$$") % 2 == 0)
            out.append(line)
            if not inside:
                out.append("")
            continue
        if inside:
            out.append(line)
            if stripped.endswith("$$"):
                inside = False
                out.append("")
            continue
        if out and out[-1] == "" and not stripped and len(out) > 1 \
                and out[-2] == "":
            continue
        out.append(line)
    return "\n".join(out)


class DocstringFixes(griffe.Extension):
    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = fix_docstring(obj.docstring.value)
