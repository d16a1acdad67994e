"""The keras-optzoo optimizers: torch.optim's update rules on every Keras backend."""

from keras_optzoo.optimizers.adadelta import Adadelta
from keras_optzoo.optimizers.adagrad import Adagrad
from keras_optzoo.optimizers.adam import Adam
from keras_optzoo.optimizers.adam import AdamW
from keras_optzoo.optimizers.base import SlotSpec
from keras_optzoo.optimizers.base import ZooOptimizer
from keras_optzoo.optimizers.nadam import NAdam
from keras_optzoo.optimizers.rmsprop import RMSprop
from keras_optzoo.optimizers.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "AdamW",
    "NAdam",
    "SlotSpec",
    "ZooOptimizer",
]
