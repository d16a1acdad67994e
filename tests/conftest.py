"""Shared pytest setup: report the backend, import torch before TensorFlow."""

import os

# torch first: importing it after TensorFlow in one process can crash
# (Keras's own test suite does the same).
import torch  # noqa: F401

import keras

if keras.backend.backend() == "jax" and "JAX_COMPILATION_CACHE_DIR" not in \
        os.environ:
    # One XLA compilation per distinct program in this session: JAX's
    # compilation cache, in a directory of this run only (removed at exit;
    # nothing is read from an earlier run). Many tests compile the same
    # optimizer step (same config, shapes and dtypes: the numerics tests'
    # huge/tiny/NaN/zero gradients, the fit-level tests' train steps) in
    # separate jit objects; the cache keys on the program itself, so they
    # share one executable (the CI budget: measured on
    # test_numerics.py's extreme and NaN tests, 93 -> 60 CPU-s cold).
    import atexit
    import shutil
    import tempfile

    import jax

    _CACHE = tempfile.mkdtemp(prefix="keras-optzoo-jax-cache-")
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    atexit.register(shutil.rmtree, _CACHE, True)


def pytest_report_header(config):
    return (f"keras backend: {keras.backend.backend()} "
            f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '<unset>')}), "
            f"keras {keras.__version__}, torch {torch.__version__}")
