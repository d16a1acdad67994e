"""torch's fused optimizer kernels, by name.

An optimizer class declares the kernel that computes exactly its rule with
the class attribute ``fused_kernel = "adam"`` (or ``"sgd"``, ``"adagrad"``)
where it is defined. :func:`kernel_for` uses it only for an instance of the
declaring class or of a subclass that overrides neither ``_update`` nor
``_prepare`` nor sets ``weight_decay_in_update``, and only while the
hyperparameter the kernel reads as a number and ``weight_decay`` are floats
(a schedule's value would need a host read each step). This module imports
no optimizer.
"""

import keras


def _iterations(opt):
    iterations = opt.iterations
    if isinstance(iterations, keras.Variable):
        iterations = iterations.value
    return iterations


def _step_value(opt):
    return int(_iterations(opt).item())


def _step_tensors(opt, group):
    """The kernels' per-parameter step counts: one tensor holding the
    1-based step, listed once per parameter (they only read it). Written
    on the device from ``iterations`` (no host read)."""
    import torch

    if group.step is None:
        group.step = torch.zeros((), device=group.params[0].device)
    group.step.copy_(_iterations(opt))
    group.step.add_(1.0)
    return [group.step] * len(group.params)


def fused_allowed(opt, device_scalars):
    """Whether the declared fused kernel may run in this mode: torch's
    fused SGD takes "is this the first step" as a Python bool, which only a
    host read of ``iterations`` can tell; on the first step our rule sets
    the buffer to the gradient, which equals ``momentum·0 + g`` (what the
    kernel computes on a zero buffer when told it is not the first step)
    only without dampening. With dampening the foreach program (which
    selects on the device) runs instead."""
    if not device_scalars or getattr(opt, "fused_kernel", None) != "sgd":
        return True
    return getattr(opt, "dampening", 0.0) == 0.0


def _fused_adam(opt, group, lr):
    import torch

    fn = torch._fused_adamw_ if opt.decoupled_weight_decay \
        else torch._fused_adam_
    fn(group.params, group.grads, group.slots["exp_avg"],
       group.slots["exp_avg_sq"], group.slots.get("max_exp_avg_sq", []),
       _step_tensors(opt, group), lr=lr, beta1=opt.beta_1, beta2=opt.beta_2,
       weight_decay=opt.weight_decay if group.decay else 0.0,
       eps=opt.epsilon, amsgrad=opt.amsgrad, maximize=opt.maximize)


def _fused_sgd(opt, group, lr):
    import torch

    torch._fused_sgd_(
        group.params, group.grads, group.slots.get("momentum_buffer", []),
        weight_decay=opt.weight_decay if group.decay else 0.0,
        momentum=opt.momentum, lr=lr, dampening=opt.dampening,
        nesterov=opt.nesterov, maximize=opt.maximize,
        # with a tensor lr (device scalars) the buffers are zero on the
        # first step and there is no dampening (``fused_allowed``)
        is_first_step=False if not isinstance(lr, float)
        else _step_value(opt) == 0,
    )


def _fused_adagrad(opt, group, lr):
    import torch

    torch._fused_adagrad_(
        group.params, group.grads, group.slots["sum"],
        _step_tensors(opt, group), lr=lr,
        lr_decay=opt.lr_decay,
        weight_decay=opt.weight_decay if group.decay else 0.0,
        eps=opt.epsilon, maximize=opt.maximize,
    )


_FUSED_BY_CLASS = {}


#: name -> (kernel, hyperparameter that must be a float, or None)
KERNELS = {
    "adam": (_fused_adam, "beta_1"),
    "sgd": (_fused_sgd, "momentum"),
    "adagrad": (_fused_adagrad, None),
}

_BY_CLASS = {}


def _declaring_class(cls):
    for klass in cls.__mro__:
        if "fused_kernel" in vars(klass):
            return klass
    return None


def kernel_for(opt):
    """torch's fused kernel for ``opt`` where it computes exactly its rule,
    else None."""
    cls = type(opt)
    entry = _BY_CLASS.get(cls)
    if entry is None:
        entry = (None, None)
        owner = _declaring_class(cls)
        name = getattr(cls, "fused_kernel", None)
        if owner is not None and name is not None:
            if name not in KERNELS:
                raise ValueError(
                    f"{owner.__name__}.fused_kernel must be one of "
                    f"{sorted(KERNELS)} or None. Received: {name!r}")
            # weight_decay_in_update: _update decays, the kernel would not
            if cls._update is owner._update and \
                    cls._prepare is owner._prepare and \
                    not getattr(cls, "weight_decay_in_update", False):
                entry = KERNELS[name]
        _BY_CLASS[cls] = entry
    kernel, hyper = entry
    if getattr(opt, "caution", False):
        return None  # a cautious mask: no fused kernel computes it
    if hyper is not None and not isinstance(getattr(opt, hyper), float):
        return None
    if not isinstance(getattr(opt, "weight_decay", 0.0), float):
        return None  # a scheduled weight decay: the foreach path reads it
    return kernel


def _fusable(group):
    return all(g.is_contiguous() for g in group.grads)


