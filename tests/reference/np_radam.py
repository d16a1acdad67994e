"""NumPy float64 reference of torch.optim.RAdam (torch 2.13), written from
the update equations of Liu et al. (2020) as torch states them (a test
oracle)::

    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    rho_inf = 2 / (1 - beta_2) - 1
    rho_t = rho_inf - 2 t beta_2**t / (1 - beta_2**t)
    if rho_t > 5:
        r = sqrt((rho_t - 4)(rho_t - 2) rho_inf
                 / ((rho_inf - 4)(rho_inf - 2) rho_t))
        theta -= (lr * m / (1 - beta_1**t) * r * sqrt(1 - beta_2**t)
                  / (sqrt(v) + eps))
    else:
        theta -= lr * m / (1 - beta_1**t)

Weight decay: L2 added to the gradient, or (decoupled_weight_decay=True)
theta *= 1 - lr * wd before the update.
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_radam
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyRAdam(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, maximize=False,
                 weight_decay_mask=None):
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.decoupled = bool(decoupled_weight_decay)
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def _update(self, param, g, state, lr, t):
        b1, b2 = self.beta_1, self.beta_2
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        state["v"] = b2 * state["v"] + (1.0 - b2) * g * g
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho_t = rho_inf - 2.0 * t * b2 ** t / bc2
        m_hat = state["m"] / bc1
        if rho_t > 5.0:
            r = math.sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                          / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
            return param - lr * m_hat * r * math.sqrt(bc2) / (
                np.sqrt(state["v"]) + self.epsilon)
        return param - lr * m_hat
