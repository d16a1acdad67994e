"""Reference optimizers that are not torch optimizers, behind torch's
optimizer interface (``param_groups`` of dicts holding ``"lr"``, ``step()``
reading ``p.grad`` and writing ``p.data``), so that the generic tests drive
them like torch.optim's.

:class:`OptaxYogi` runs ``optax.yogi`` 0.2.8 in float32 with JAX on the CPU.
"""

import numpy as np


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
            values = [jnp.asarray(p.detach().numpy()) for p in group["params"]]
            self.param_groups.append(group)
            self._opts.append(opt)
            self._states.append(opt.init(values))

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
            state.hyperparams["learning_rate"] = jnp.asarray(
                group["lr"], state.hyperparams["learning_rate"].dtype)
            params = [jnp.asarray(p.detach().numpy())
                      for p in group["params"]]
            grads = [jnp.asarray(p.grad.detach().numpy())
                     for p in group["params"]]
            updates, self._states[i] = opt.update(grads, state, params)
            new = optax.apply_updates(params, updates)
            with torch.no_grad():
                for p, value in zip(group["params"], new):
                    p.copy_(torch.from_numpy(np.array(value)))
