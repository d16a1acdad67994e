"""Reference optimizers that are not torch optimizers, behind torch's
optimizer interface (``param_groups`` of dicts holding ``"lr"``, ``step()``
reading ``p.grad`` and writing ``p.data``), so that the generic tests drive
them like torch.optim's.

:class:`OptaxYogi` runs ``optax.yogi`` 0.2.8 with JAX on the CPU, in the
params' dtype: float32, or float64 for float64 params (with 64-bit JAX
types enabled for those calls only, see :func:`_precision`).
"""

import contextlib

import numpy as np


def _precision(params):
    """The JAX precision context for a group's torch ``params``.

    JAX keeps ``jax_enable_x64`` off unless the process enables it (the
    float64 test's JAX run does, through ``JAX_ENABLE_X64=1``); without it
    ``jnp.asarray`` of float64 data makes float32 arrays and optax would
    run in float32. For float64 params, ``jax.enable_x64(True)`` turns
    64-bit types on around the adapter's JAX calls only (a scoped setting:
    the rest of the process keeps its JAX configuration).
    """
    import torch

    if any(p.dtype == torch.float64 for p in params):
        import jax

        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _optax_yogi_l2(learning_rate, b1, b2, eps, initial_accumulator_value,
                   weight_decay):
    """``optax.yogi`` (its own two transforms, so that
    ``initial_accumulator_value`` can be given) after optax's L2 term."""
    # (``optax.yogi`` is exactly ``chain(scale_by_yogi, scale_by_learning_rate)``)
    import optax

    parts = []
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts += [
        optax.scale_by_yogi(b1=b1, b2=b2, eps=eps,
                            initial_accumulator_value=initial_accumulator_value),
        optax.scale_by_learning_rate(learning_rate),
    ]
    return optax.chain(*parts)


class OptaxYogi:
    """``optax.yogi`` with torch's optimizer interface.

    One optax state per param group (a group may set its own
    ``weight_decay``); ``optax.inject_hyperparams`` makes the learning rate a
    value of the state, so a change of ``group["lr"]`` between steps is used
    from the next step on, as with a torch optimizer. With the default
    ``initial_accumulator_value`` and no weight decay this is exactly
    ``optax.inject_hyperparams(optax.yogi)``.
    """

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-3,
                 initial_accumulator_value=1e-6, weight_decay=0.0):
        import jax.numpy as jnp
        import optax

        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps,
                        initial_accumulator_value=initial_accumulator_value,
                        weight_decay=weight_decay)
        self.param_groups = []
        self._opts = []
        self._states = []
        for group in params:
            group = {**defaults, **group, "params": list(group["params"])}
            b1, b2 = group["betas"]
            if group["weight_decay"] or group["initial_accumulator_value"] \
                    != 1e-6:
                opt = optax.inject_hyperparams(_optax_yogi_l2)(
                    learning_rate=group["lr"], b1=b1, b2=b2, eps=group["eps"],
                    initial_accumulator_value=group[
                        "initial_accumulator_value"],
                    weight_decay=group["weight_decay"])
            else:
                opt = optax.inject_hyperparams(optax.yogi)(
                    learning_rate=group["lr"], b1=b1, b2=b2, eps=group["eps"])
            with _precision(group["params"]):
                values = [jnp.asarray(p.detach().numpy())
                          for p in group["params"]]
                state = opt.init(values)
            self.param_groups.append(group)
            self._opts.append(opt)
            self._states.append(state)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        import jax.numpy as jnp
        import optax
        import torch

        for i, (group, opt) in enumerate(zip(self.param_groups, self._opts)):
            state = self._states[i]
            with _precision(group["params"]):
                state.hyperparams["learning_rate"] = jnp.asarray(
                    group["lr"], state.hyperparams["learning_rate"].dtype)
                params = [jnp.asarray(p.detach().numpy())
                          for p in group["params"]]
                grads = [jnp.asarray(p.grad.detach().numpy())
                         for p in group["params"]]
                updates, self._states[i] = opt.update(grads, state, params)
                new = [np.array(v)
                       for v in optax.apply_updates(params, updates)]
            with torch.no_grad():
                for p, value in zip(group["params"], new):
                    p.copy_(torch.from_numpy(value))
