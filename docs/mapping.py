"""The guides' mapping tables, generated so that they cannot drift.

Each table reads the other library's own list of names (torch's modules,
transformers' enums, timm's source) and finds the keras-optzoo name through
the registry and the docstrings (each class names its reference with the
dotted class path). A name with no counterpart says so. Used by
docs/gen_pages.py (``<!-- table: NAME -->`` markers in docs/src/guides/).
"""

import ast
import inspect
import pathlib
import re


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |"
            for r in rows]
    return "\n".join(out) + "\n"


def _missing(package, error):
    return (f"*This table is generated from {package}, which is not "
            f"installed here ({type(error).__name__}); install the `dev` "
            "extra to see it.*\n")


def _references():
    """[(class, first docstring paragraph)] of every registered class."""
    from keras_optzoo import registry

    out = []
    for cls in registry.classes():
        doc = inspect.cleandoc(cls.__doc__ or "")
        out.append((cls, " ".join(doc.split("\n\n")[0].split())))
    return out


def _class_link(cls):
    from keras_optzoo import registry

    name = next(e.name for e in registry.entries()
                if e.cls is cls and not e.preset)
    return f"[`oz.{cls.__name__}`](../optimizers/{name}.md)"


def ours_for(dotted):
    """Registered classes whose docstring's first paragraph names
    ``dotted`` (``torch.optim.Adam``, ``timm.optim.adan.Adan``)."""
    pattern = re.compile(re.escape(dotted) + r"(?![\w])")
    return [cls for cls, ref in _references() if pattern.search(ref)]


def _schedule_link(name):
    import keras_optzoo.schedules as S

    family = getattr(S, name).__module__.rsplit(".", 1)[1]
    return f"[`oz.schedules.{name}`](../schedules/{family}.md#{name.lower()})"


def torch_optim():
    try:
        import torch.optim
    except ImportError as error:
        return _missing("torch", error)
    rows = []
    for name in sorted(dir(torch.optim)):
        obj = getattr(torch.optim, name)
        if not (inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer)
                and obj is not torch.optim.Optimizer):
            continue
        ours = ours_for(f"torch.optim.{name}")
        rows.append([f"`torch.optim.{name}`",
                     ", ".join(_class_link(c) for c in ours)
                     or "not provided"])
    return _table(["torch.optim", "keras-optzoo"], rows)


def torch_schedulers():
    try:
        from torch.optim import lr_scheduler
    except ImportError as error:
        return _missing("torch", error)
    import keras_optzoo.callbacks as C
    import keras_optzoo.schedules as S

    rows = []
    for name in sorted(dir(lr_scheduler)):
        obj = getattr(lr_scheduler, name)
        if not (inspect.isclass(obj) and obj.__module__ == lr_scheduler.__name__
                and name.endswith(("LR", "Scheduler", "Plateau"))
                and not name.startswith(("_", "LRScheduler"))):
            continue
        if hasattr(S, name):
            ours = _schedule_link(name)
        elif hasattr(C, name):
            ours = f"`oz.callbacks.{name}` ([callbacks](../topics/callbacks.md))"
        else:
            ours = "not provided"
        rows.append([f"`lr_scheduler.{name}`", ours])
    return _table(["torch.optim.lr_scheduler", "keras-optzoo"], rows)


def hf_optim():
    try:
        from transformers.training_args import OptimizerNames
    except Exception as error:
        return _missing("transformers", error)
    from keras_optzoo import registry

    names = set(registry.list_optimizers())
    rows = []
    for value in (o.value for o in OptimizerNames):
        # the algorithm: the value without transformers' implementation
        # suffixes (torch, fused, bnb, 8bit...)
        base = re.sub(r"^(paged_)", "", value)
        base = re.sub(r"(_torch.*|_hf|_apex.*|_anyprecision|_bnb.*|_\d+bit.*"
                      r"|_layerwise)$", "", base)
        base = re.sub(r"_\d+bit$", "", base)
        if base in names and value.split("_")[0] not in (
                "galore", "apollo", "grokadamw", "schedule", "stable", "lomo"):
            entry = registry.get  # noqa: F841 - existence checked above
            note = ("" if base == value else
                    "same algorithm; transformers' variant "
                    f"`{value}` differs in implementation only"
                    if not re.search(r"\d+bit", value) else
                    "the 32-bit algorithm (quantised state not provided)")
            rows.append([f"`{value}`", f'`oz.get("{base}")`', note])
        else:
            rows.append([f"`{value}`", "not provided", ""])
    return _table(["`optim=`", "keras-optzoo", "note"], rows)


def hf_schedulers():
    try:
        from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION
    except Exception as error:
        return _missing("transformers", error)
    import keras_optzoo.schedules as S

    docs = {name: inspect.getdoc(getattr(S, name)) or ""
            for name in dir(S) if inspect.isclass(getattr(S, name))}
    rows = []
    for kind, function in TYPE_TO_SCHEDULER_FUNCTION.items():
        fname = function.__name__
        pattern = re.compile(r"\b" + re.escape(fname) + r"\b")
        ours = sorted(n for n, d in docs.items() if pattern.search(d))
        if not ours and kind.value == "reduce_lr_on_plateau":
            cell = "`oz.callbacks.ReduceLROnPlateau` (a callback)"
        elif not ours and kind.value == "constant":
            cell = (_schedule_link("ConstantWithWarmup")
                    + " with `num_warmup_steps=0`, or a float rate")
        else:
            cell = ", ".join(_schedule_link(n) for n in ours) or "not provided"
        rows.append([f"`{kind.value}`", f"`{fname}`", cell])
    return _table(["`lr_scheduler_type=`", "transformers function",
                   "keras-optzoo"], rows)


def _timm_dir():
    import importlib.util

    spec = importlib.util.find_spec("timm")
    if spec is None:
        raise ImportError("timm")
    return pathlib.Path(spec.origin).parent


def timm_optim():
    """From timm's _optim_factory.py source (importing timm.optim needs
    torchvision): each OptimInfo's name, class and defaults."""
    try:
        source = (_timm_dir() / "optim" / "_optim_factory.py").read_text()
    except Exception as error:
        return _missing("timm", error)
    tree = ast.parse(source)
    imports = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                imports[alias.asname or alias.name] = (
                    f"timm.optim.{node.module}.{alias.name}")
    rows = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "OptimInfo"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        if "name" not in kw or "opt_class" not in kw:
            continue
        name = ast.literal_eval(kw["name"])
        klass = ast.unparse(kw["opt_class"])
        dotted = imports.get(klass, klass)
        if dotted.startswith("optim."):
            dotted = "torch." + dotted
        defaults = ast.unparse(kw["defaults"]) if "defaults" in kw else ""
        ours = ours_for(dotted)
        if not ours and "." in dotted:
            # timm's copy of a torch algorithm under the same class name
            ours = ours_for("torch.optim." + dotted.rsplit(".", 1)[1])
        rows.append([f"`{name}`", f"`{dotted}`",
                     f"`{defaults}`" if defaults else "",
                     ", ".join(_class_link(c) for c in ours)
                     or "not provided"])
    rows.sort()
    return _table(["`opt=` name", "timm class", "timm defaults",
                   "keras-optzoo"], rows)


def timm_schedulers():
    """From timm's scheduler_factory.py: ``sched == 'x'`` -> the class
    built in that branch."""
    try:
        source = (_timm_dir() / "scheduler" / "scheduler_factory.py"
                  ).read_text()
    except Exception as error:
        return _missing("timm", error)
    import keras_optzoo.schedules as S

    rows = []
    for match in re.finditer(
            r"sched (?:==|in) (\(?[^:]+?\)?):\n(.*?)(?=\n    (?:el)?if |\n\n)",
            source, re.S):
        names = re.findall(r"'(\w+)'", match.group(1))
        built = re.findall(r"(\w+Scheduler)\(", match.group(2))
        if not built:
            continue
        klass = built[0]
        cell = _schedule_link(klass) if hasattr(S, klass) else "not provided"
        for name in names:
            rows.append([f"`{name}`", f"`{klass}`", cell])
    return _table(["`sched=` name", "timm class", "keras-optzoo"], rows)


def registry_names():
    from keras_optzoo import registry

    return _table(["`oz.get` name", "class", "preset arguments"], [
        [f"`{e.name}`", _class_link(e.cls),
         ", ".join(f"`{k}={v!r}`" for k, v in e.kwargs.items()) or "—"]
        for e in registry.entries()])


TABLES = {
    "torch_optim": torch_optim,
    "torch_schedulers": torch_schedulers,
    "hf_optim": hf_optim,
    "hf_schedulers": hf_schedulers,
    "timm_optim": timm_optim,
    "timm_schedulers": timm_schedulers,
    "registry": registry_names,
}
