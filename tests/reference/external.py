"""Loads the reference implementations that are not torch.optim.

timm's optimizer modules need only torch, but importing the ``timm`` package
runs its ``__init__``, which imports torchvision (no build exists for the
pinned torch). :func:`timm_optim` registers empty ``timm`` and ``timm.optim``
package objects pointing at the installed directories, so that
``timm.optim.lamb`` and its relative imports load without either
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


def timm_optim(module):
    """``timm.optim.<module>`` (e.g. ``timm_optim("lamb").Lamb``)."""
    if "timm.optim" not in sys.modules:
        spec = importlib.util.find_spec("timm")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("timm is not installed (pip install --no-deps "
                              "-c constraints.txt timm)")
        root = list(spec.submodule_search_locations)[0]
        _bare_package("timm", root)
        _bare_package("timm.optim", f"{root}/optim")
    return importlib.import_module(f"timm.optim.{module}")
