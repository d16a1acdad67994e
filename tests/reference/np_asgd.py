"""NumPy float64 reference of torch.optim.ASGD (torch 2.13, single-tensor
path), written from its update equations (a test oracle). Per parameter:
eta = lr (of the first step), mu = 1, ax = 0; then each step t::

    g = g + wd * theta                                  (coupled L2)
    theta = theta * (1 - lambd * eta) - eta * g
    ax = theta                      if mu == 1
    ax = ax + mu * (theta - ax)     otherwise
    eta = lr / (1 + lambd * lr * t) ** alpha            (for the next step)
    mu = 1 / max(1, t - t0)

``averages()`` returns the ``ax`` of every parameter.
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_asgd
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyASGD(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-2, lambd=1e-4, alpha=0.75,
                 t0=1e6, weight_decay=0.0, maximize=False,
                 weight_decay_mask=None):
        self.lambd = float(lambd)
        self.alpha = float(alpha)
        self.t0 = float(t0)
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"eta": None, "mu": 1.0, "ax": np.zeros_like(param)}

    def _update(self, param, g, state, lr, t):
        if state["eta"] is None:
            state["eta"] = lr
        eta = state["eta"]
        param = param * (1.0 - self.lambd * eta) - eta * g
        if state["mu"] == 1.0:
            state["ax"] = param.copy()
        else:
            state["ax"] = state["ax"] + state["mu"] * (param - state["ax"])
        state["eta"] = lr / (1.0 + self.lambd * lr * t) ** self.alpha
        state["mu"] = 1.0 / max(1.0, t - self.t0)
        return param

    def averages(self):
        return [np.array(s["ax"], np.float64) for s in self.states]
