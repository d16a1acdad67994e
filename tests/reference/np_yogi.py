"""NumPy float64 reference of Yogi (optax 0.2.8's scale_by_yogi, then -lr).

Written from Zaheer et al. 2018 Algorithm 2 with optax's choices (both
moments start at initial_accumulator_value, both bias-corrected, eps outside
the root); weight_decay is L2 added to the gradient first::

    m = beta_1 * m + (1 - beta_1) * g
    v = v - (1 - beta_2) * sign(v - g^2) * g^2
    theta = theta - lr * (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps)
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyYogi(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-2, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-3, initial_accumulator_value=1e-6,
                 weight_decay=0.0, maximize=False, weight_decay_mask=None):
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.init = float(initial_accumulator_value)
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.full_like(param, self.init),
                "v": np.full_like(param, self.init)}

    def _update(self, param, g, state, lr, t):
        b1, b2 = self.beta_1, self.beta_2
        state["m"] = b1 * state["m"] + (1 - b1) * g
        g2 = g * g
        state["v"] = state["v"] - (1 - b2) * np.sign(state["v"] - g2) * g2
        m_hat = state["m"] / (1 - b1 ** t)
        v_hat = state["v"] / (1 - b2 ** t)
        return param - lr * m_hat / (np.sqrt(v_hat) + self.epsilon)
