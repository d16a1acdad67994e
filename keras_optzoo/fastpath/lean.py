"""The lean step: Keras's ``apply()`` without its bookkeeping (torch).

Keras's ``apply()`` does bookkeeping around the update on every call
(name scopes, the filtering of missing gradients, ``overwrite_with_gradient``
variables, loss scaling, gradient accumulation, clipping, EMA, constraints),
about 50-100 us on a CPU, as much as the whole update of a model with 1e4
parameters. When none of it is in use, a step is exactly::

    optimizer._backend_update_step(grads, variables, optimizer.learning_rate)
    optimizer.iterations += 1

``ZooOptimizer.apply`` calls :func:`try_apply` first on the torch backend
(so ``fit`` and custom loops get it without asking): it checks, once per
configuration, that none of the bookkeeping is in use (:func:`_plain`, the
verdict cached on the optimizer), and on every call the little that can
change between calls (the variables passed, a missing or sparse gradient, a
scope in which variables are not written in place). Anything else returns
False and Keras's ``apply`` runs as usual. :func:`lean_step` gives the same
step as a function of the gradients alone. ``tests/test_multi_tensor.py``
checks both equal Keras's ``apply`` for the spec database. This module
imports no optimizer.
"""

import keras

_BACKEND = keras.backend.backend()


def _plain(opt, variables):
    """Why the lean step cannot stand in for ``apply`` (None: it can)."""
    if _BACKEND != "torch":
        return "another backend"
    try:  # the class whose apply() the lean step mirrors
        from keras.src.optimizers.base_optimizer import BaseOptimizer
    except ImportError:  # a Keras that moved it: take Keras's apply
        return "keras.src.optimizers.base_optimizer.BaseOptimizer moved"
    if not opt.built:
        return "not built"
    cls = type(opt)
    base = next((k for k in cls.__mro__ if k.__name__ == "ZooOptimizer"),
                None)
    if base is None or cls.apply is not base.apply or \
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
    if not _same_variables(opt, None):
        return "a variable with a constraint or overwrite_with_gradient"
    return None


def _config_key(opt):
    """What :func:`_plain`'s verdict depends on besides the variables."""
    return (id(opt._trainable_variables), len(opt._trainable_variables),
            opt.gradient_accumulation_steps, opt.use_ema,
            opt.loss_scale_factor, opt.clipnorm, opt.clipvalue,
            opt.global_clipnorm)


def _verdict(opt):
    """:func:`_plain` for the built variables, cached per configuration."""
    key = _config_key(opt)
    cached = getattr(opt, "_lean_verdict", None)
    if cached is None or cached[0] != key:
        cached = (key, _plain(opt, opt._trainable_variables) is None)
        opt._lean_verdict = cached
    return cached[1]


def _same_variables(opt, variables):
    """The built variables (in order) are the ones passed, and none has a
    constraint or ``overwrite_with_gradient`` (checked every step: either
    can be set on a variable at any time)."""
    built = opt._trainable_variables
    if variables is not None:
        if len(variables) != len(built):
            return False
        for a, b in zip(variables, built):
            if a is not b:
                return False
    for v in built:
        if getattr(v, "constraint", None) is not None or \
                getattr(v, "overwrite_with_gradient", False):
            return False
    return True


def _dense(grads, n):
    import torch

    if len(grads) != n:
        return False
    for g in grads:
        if g is None or not isinstance(g, torch.Tensor) or g.is_sparse:
            return False
    return True


def try_apply(opt, grads, variables):
    """Runs ``opt.apply(grads, variables)``'s step without Keras's
    bookkeeping and returns True, or returns False (changing nothing) where
    that bookkeeping would do something."""
    if not opt.built or not _verdict(opt):
        return False
    if not _same_variables(opt, variables):
        return False
    if not _dense(grads, len(opt._trainable_variables)):
        return False
    from keras_optzoo.fastpath.runner import _keras_state_allows_in_place

    if not _keras_state_allows_in_place():
        return False
    # A torch Keras variable keeps its tensor for life (assignments copy
    # into it), so the counter is incremented in place: what
    # ``assign_add(1)`` computes, without its dispatch (~0.1 ms).
    opt._backend_update_step(list(grads), opt._trainable_variables,
                             opt.learning_rate)
    opt._iterations.value.add_(1)
    return True


def lean_step(opt, variables):
    """``step(grads)``, equal to ``opt.apply(grads, variables)``, or None
    where Keras's bookkeeping is in use (see the module docstring)."""
    variables = list(variables)
    if _plain(opt, variables) is not None:
        return None

    def step(grads):
        if not try_apply(opt, grads, variables):
            opt.apply(grads, variables)

    return step
