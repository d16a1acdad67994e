"""Keras callbacks of keras-optzoo."""

from keras_optzoo.callbacks.lr_finder import LRFinder
from keras_optzoo.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau

__all__ = ["ReduceLROnPlateau", "LRFinder"]
