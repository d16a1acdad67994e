"""Loads the reference implementations that are not torch.optim.

timm's optimizer and scheduler modules need only torch, but importing the
``timm`` package runs its ``__init__``, which imports torchvision (no build
exists for the pinned torch). :func:`timm_optim` and :func:`timm_scheduler`
register empty ``timm`` and ``timm.optim`` / ``timm.scheduler`` package
objects pointing at the installed directories, so that ``timm.optim.lamb``
or ``timm.scheduler.cosine_lr`` and their relative imports load without any
``__init__`` running.
"""

import importlib
import importlib.util
import sys
import types


def _bare_package(name, path):
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = [path]
        module.__package__ = name
        sys.modules[name] = module
    return module


def _timm_subpackage(name):
    if f"timm.{name}" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("timm is not installed (pip install --no-deps "
                              "-c constraints.txt timm)")
        root = list(spec.submodule_search_locations)[0]
        _bare_package("timm", root)
        _bare_package(f"timm.{name}", f"{root}/{name}")


def timm_optim(module):
    """``timm.optim.<module>`` (e.g. ``timm_optim("lamb").Lamb``)."""
    _timm_subpackage("optim")
    return importlib.import_module(f"timm.optim.{module}")


def timm_scheduler(module):
    """``timm.scheduler.<module>`` (e.g.
    ``timm_scheduler("cosine_lr").CosineLRScheduler``)."""
    _timm_subpackage("scheduler")
    return importlib.import_module(f"timm.scheduler.{module}")
