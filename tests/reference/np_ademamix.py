"""NumPy float64 reference of AdEMAMix (pytorch-optimizer 4.1.0's AdEMAMix).

From Pagliardini et al. 2024 Algorithm 1 (with its alpha / beta_3
schedulers) and the reference's weight decay and cautious mask::

    T = t_alpha_beta3:  alpha_t = min(t * alpha / T, alpha)
        beta3_t = min(exp(ln b1 ln b3 / ((1 - t/T) ln b3 + (t/T) ln b1)), b3)
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  s = b3_t s + (1 - b3_t) g
    fast = m (caution: m * c * size / (sum(c) + 1), c = [m * g > 0])
    theta = theta - lr * (fast / (1 - b1^t) + alpha_t s)
                    / (sqrt(v) / sqrt(1 - b2^t) + eps)
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer

try:
    from reference.np_adopt import pto_decay
    from reference.np_lion import pto_mask
except ImportError:
    from tests.reference.np_adopt import pto_decay
    from tests.reference.np_lion import pto_mask


class NumpyAdEMAMix(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.999, beta_3=0.9999, alpha=5.0, t_alpha_beta3=None,
                 epsilon=1e-8, weight_decay=0.0, decoupled_weight_decay=False,
                 fixed_decay=False, caution=False, maximize=False,
                 weight_decay_mask=None):
        self.b1, self.b2, self.b3 = float(beta_1), float(beta_2), float(beta_3)
        self.alpha = float(alpha)
        self.T = t_alpha_beta3
        self.epsilon = float(epsilon)
        self.wd = float(weight_decay)
        self.decoupled_mode = bool(decoupled_weight_decay)
        self.fixed_decay = bool(fixed_decay)
        self.caution = bool(caution)
        super().__init__(params, learning_rate, 0.0, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        z = np.zeros_like(param)
        return {"m": z, "v": z, "s": z}

    def step(self, grads):
        self._index = 0
        return super().step(grads)

    def _begin_step(self, t):
        if self.T is None:
            self._alpha, self._b3 = self.alpha, self.b3
            return
        f = t / self.T
        self._alpha = min(f * self.alpha, self.alpha)
        l1, l3 = math.log(self.b1), math.log(self.b3)
        self._b3 = min(math.exp(l1 * l3 / ((1 - f) * l3 + f * l1)), self.b3)

    def _update(self, param, g, state, lr, t):
        i, self._index = self._index, self._index + 1
        param, g = pto_decay(self, i, param, g, lr)
        state["m"] = self.b1 * state["m"] + (1 - self.b1) * g
        state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        state["s"] = self._b3 * state["s"] + (1 - self._b3) * g
        denom = np.sqrt(state["v"]) / math.sqrt(1 - self.b2 ** t) + self.epsilon
        fast = pto_mask(state["m"], g) if self.caution else state["m"]
        u = fast / (1 - self.b1 ** t) + self._alpha * state["s"]
        return param - lr * u / denom
