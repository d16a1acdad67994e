"""The keras-optzoo optimizers: torch.optim's update rules and the field's
other optimizers, on every Keras backend.

Every module of this package that is not infrastructure holds one algorithm
(or one family) and registers its classes with
:func:`keras_optzoo.registry.register_optimizer`. The modules are imported
here in alphabetical order and every registered class is exported under its
own name, so adding an optimizer is adding its module: the registry, the
top-level ``keras_optzoo.X`` names, the README table and the spec-driven
tests all follow from the registration.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from keras_optzoo import registry as _registry
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer

#: modules that hold infrastructure, not an algorithm
_INFRASTRUCTURE = frozenset({"base", "validation"})

for _info in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_info.name}")

_CLASSES = _registry.classes()
globals().update({cls.__name__: cls for cls in _CLASSES})

__all__ = sorted(cls.__name__ for cls in _CLASSES) + ["SlotSpec",
                                                      "ZooOptimizer"]
