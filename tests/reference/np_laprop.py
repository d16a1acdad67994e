"""NumPy float64 reference of LaProp (timm 1.0.31's LaProp).

From Ziyin et al. 2020 Algorithm 1 with timm's learning-rate-weighted
momentum and its decoupled decay after the step::

    v = beta_2 * v + (1 - beta_2) * g^2
    m = beta_1 * m + (1 - beta_1) * lr * g / (sqrt(v / (1 - beta_2^t)) + eps)
    l = beta_1 * l + (1 - beta_1) * lr              (l starts at 0)
    u = m;  caution: c = [m * g > 0];  u = m * c / max(mean(c), 1e-3)
    theta = theta - (lr / l) * u
    theta = theta - lr * wd * theta
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer

try:
    from reference.np_lion import timm_mask
except ImportError:
    from tests.reference.np_lion import timm_mask


class NumpyLaProp(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=4e-4, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-15, weight_decay=0.0, caution=False,
                 maximize=False, weight_decay_mask=None):
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.caution = bool(caution)
        self.wd = float(weight_decay)
        # the decay comes after the step: handled here, not by the base
        super().__init__(params, learning_rate, 0.0, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param),
                "l": 0.0}

    def step(self, grads):
        self._index = 0
        return super().step(grads)

    def _update(self, param, g, state, lr, t):
        i, self._index = self._index, self._index + 1
        b1, b2 = self.beta_1, self.beta_2
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        denom = np.sqrt(state["v"] / (1 - b2 ** t)) + self.epsilon
        state["m"] = b1 * state["m"] + (1 - b1) * lr * g / denom
        state["l"] = b1 * state["l"] + (1 - b1) * lr
        u = timm_mask(state["m"], g) if self.caution else state["m"]
        step_size = lr / state["l"] if state["l"] != 0 else 0.0
        param = param - step_size * u
        if self.weight_decay_mask[i]:
            param = param - lr * self.wd * param
        return param
