"""Shared pytest setup: report the backend, import torch before TensorFlow."""

import os

# torch first: importing it after TensorFlow in one process can crash
# (Keras's own test suite does the same).
import torch  # noqa: F401

import keras


def pytest_report_header(config):
    return (f"keras backend: {keras.backend.backend()} "
            f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '<unset>')}), "
            f"keras {keras.__version__}, torch {torch.__version__}")
