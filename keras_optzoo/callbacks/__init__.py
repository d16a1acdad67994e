"""Keras callbacks of keras-optzoo."""

from keras_optzoo.callbacks.averaging import AveragedWeights
from keras_optzoo.callbacks.averaging import WeightAveraging
from keras_optzoo.callbacks.averaging import update_bn
from keras_optzoo.callbacks.lr_finder import LRFinder
from keras_optzoo.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from keras_optzoo.callbacks.schedule_free import ScheduleFreeEval

__all__ = ["ReduceLROnPlateau", "LRFinder", "WeightAveraging",
           "AveragedWeights", "update_bn", "ScheduleFreeEval"]
