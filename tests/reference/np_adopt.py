"""NumPy float64 reference of ADOPT (pytorch-optimizer 4.1.0's ADOPT).

From Taniguchi et al. 2024 Algorithm 2 (with clipping) and the reference's
weight decay, cautious mask and first step::

    decay (every step, before): L2 g += wd * theta, or decoupled
          theta *= 1 - wd * (1 if fixed_decay else lr)
    t == 1: v = g^2 and nothing else
    n = clip(g / max(sqrt(v), eps), t ** clip_exponent)
    m = beta_1 * m + (1 - beta_1) * n
    u = m;  caution: c = [m * n > 0];  u = m * c * size / (sum(c) + 1)
    theta = theta - lr * u;   v = beta_2 * v + (1 - beta_2) * g^2
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer

try:
    from reference.np_lion import pto_mask
except ImportError:
    from tests.reference.np_lion import pto_mask


def pto_decay(opt, i, param, g, lr):
    if not (opt.wd and opt.weight_decay_mask[i]):
        return param, g
    if opt.decoupled_mode:
        return param * (1 - opt.wd * (1.0 if opt.fixed_decay else lr)), g
    return param, g + opt.wd * param


class NumpyADOPT(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.9999, epsilon=1e-6, clip_exponent=0.25,
                 weight_decay=0.0, decoupled_weight_decay=False,
                 fixed_decay=False, caution=False, maximize=False,
                 weight_decay_mask=None):
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon = float(epsilon)
        self.clip_exponent = clip_exponent
        self.wd = float(weight_decay)
        self.decoupled_mode = bool(decoupled_weight_decay)
        self.fixed_decay = bool(fixed_decay)
        self.caution = bool(caution)
        super().__init__(params, learning_rate, 0.0, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, grads):
        self._index = 0
        return super().step(grads)

    def _update(self, param, g, state, lr, t):
        i, self._index = self._index, self._index + 1
        param, g = pto_decay(self, i, param, g, lr)
        if t == 1:
            state["v"] = state["v"] + g * g
            return param
        n = g / np.maximum(np.sqrt(state["v"]), self.epsilon)
        if self.clip_exponent is not None:
            c = float(t) ** self.clip_exponent
            n = np.clip(n, -c, c)
        state["m"] = self.beta_1 * state["m"] + (1 - self.beta_1) * n
        u = pto_mask(state["m"], n) if self.caution else state["m"]
        state["v"] = self.beta_2 * state["v"] + (1 - self.beta_2) * g * g
        return param - lr * u
