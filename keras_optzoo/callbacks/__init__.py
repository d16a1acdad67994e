"""Keras callbacks of keras-optzoo."""
