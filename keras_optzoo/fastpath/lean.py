"""A lean step for a built optimizer on the torch backend.

Keras's ``apply()`` does bookkeeping around the update on every call
(name scopes, the filtering of missing gradients, ``overwrite_with_gradient``
variables, loss scaling, gradient accumulation, clipping, EMA, constraints),
about 50-100 us on a CPU. When none of it is in use, a step is exactly::

    optimizer._backend_update_step(grads, variables, optimizer.learning_rate)
    optimizer.iterations += 1

:func:`lean_step` checks once that none of it is in use and returns that
step as a function of the gradients; each call checks the little that can
change between calls (a missing or sparse gradient, a scope in which
variables are not written in place) and otherwise hands over to Keras's
``apply``. ``tests/test_multi_tensor.py`` checks it equals ``apply`` for the
spec database. This module imports no optimizer.
"""

import keras


def _plain(opt, variables):
    """Why the lean step cannot stand in for ``apply`` (None: it can)."""
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    if keras.backend.backend() != "torch":
        return "another backend"
    if not opt.built:
        return "not built"
    cls = type(opt)
    base = next(k for k in cls.__mro__ if k.__name__ == "ZooOptimizer")
    if cls.apply is not base.apply or \
            cls._backend_apply_gradients is not \
            BaseOptimizer._backend_apply_gradients:
        return f"{cls.__name__} overrides apply"
    if opt.gradient_accumulation_steps:
        return "gradient accumulation"
    if opt.use_ema:
        return "EMA"
    if opt.loss_scale_factor is not None:
        return "loss scaling"
    if opt.clipnorm is not None or opt.clipvalue is not None or \
            opt.global_clipnorm is not None:
        return "gradient clipping"
    known = {id(v) for v in opt._trainable_variables}
    for v in variables:
        if id(v) not in known:
            return "a variable the optimizer was not built with"
        if v.constraint is not None:
            return "a variable with a constraint"
        if getattr(v, "overwrite_with_gradient", False):
            return "an overwrite_with_gradient variable"
    return None


def lean_step(opt, variables):
    """``step(grads)``, equal to ``opt.apply(grads, variables)``, or None
    where Keras's bookkeeping is in use (see the module docstring)."""
    variables = list(variables)
    if _plain(opt, variables) is not None:
        return None
    import torch

    from keras_optzoo.fastpath.runner import _keras_state_allows_in_place

    # A torch Keras variable keeps its tensor for life (assignments copy
    # into it), so the counter is incremented in place: what
    # ``assign_add(1)`` computes, without its dispatch (~0.1 ms).
    counter = opt._iterations.value
    n = len(variables)

    def step(grads):
        if len(grads) != n or not _keras_state_allows_in_place() or any(
                g is None or (isinstance(g, torch.Tensor) and g.is_sparse)
                for g in grads) or opt._iterations.value is not counter:
            return opt.apply(grads, variables)
        opt._backend_update_step(grads, variables, opt.learning_rate)
        counter.add_(1)

    return step
