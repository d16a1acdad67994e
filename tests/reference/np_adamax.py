"""NumPy float64 reference of torch.optim.Adamax (torch 2.13), written from
the update equations (a test oracle)::

    g = g + wd * theta                         (coupled L2)
    m = beta_1 * m + (1 - beta_1) * g
    u = max(beta_2 * u, |g| + epsilon)
    theta = theta - lr / (1 - beta_1**t) * m / u
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_adamax
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyAdamax(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=2e-3, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
                 maximize=False, weight_decay_mask=None):
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "u": np.zeros_like(param)}

    def _update(self, param, g, state, lr, t):
        state["m"] = self.beta_1 * state["m"] + (1.0 - self.beta_1) * g
        state["u"] = np.maximum(self.beta_2 * state["u"],
                                np.abs(g) + self.epsilon)
        return param - lr / (1.0 - self.beta_1 ** t) * state["m"] / state["u"]
