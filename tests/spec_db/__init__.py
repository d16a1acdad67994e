"""Spec modules of the second-wave optimizers, one per optimizer (or family).

Each module defines ``SPECS``, a list of :class:`specs.OptimizerSpec`, and is
picked up by ``specs.py``. Keeping one module per optimizer lets them be
written and reviewed independently; the generic tests see one database.
"""
