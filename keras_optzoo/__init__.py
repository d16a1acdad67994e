"""keras-optzoo: torch.optim's optimizers and schedules for Keras 3.

Every optimizer subclasses ``keras.optimizers.Optimizer`` and is written with
``keras.ops``, so one implementation runs on the TensorFlow, JAX and PyTorch
backends and reproduces torch.optim's numbers.

    import keras_optzoo as oz
    model.compile(optimizer=oz.AdamW(learning_rate=3e-4), loss=...)
    oz.get("nag", learning_rate=0.05)
    oz.list_optimizers("adam*")
"""

from keras_optzoo import callbacks
from keras_optzoo import layout
from keras_optzoo import optimizers
from keras_optzoo import param_groups
from keras_optzoo import schedules
from keras_optzoo.optimizers import *  # noqa: F401,F403 - every optimizer
from keras_optzoo.registry import get
from keras_optzoo.sam import SAMModel
from keras_optzoo.registry import list_optimizers

__version__ = "0.2.0.dev0"

__all__ = [name for name in optimizers.__all__
           if name not in ("SlotSpec", "ZooOptimizer")] + [
    "SAMModel",
    "get",
    "layout",
    "list_optimizers",
    "optimizers",
    "param_groups",
    "schedules",
    "callbacks",
    "playground",
]


def __getattr__(name):
    # The playground needs matplotlib for its plots: import it on first use.
    if name == "playground":
        import importlib

        return importlib.import_module("keras_optzoo.playground")
    raise AttributeError(f"module 'keras_optzoo' has no attribute {name!r}")
