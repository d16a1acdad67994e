"""NumPy float64 reference of Adan as in timm 1.0.31 (from sail-sg/Adan), written
from its equations (``t`` the 1-based step, betas weigh the old averages)::

    d = g - g_prev  (0 on the first step)
    m = beta_1 m + (1 - beta_1) g
    delta = beta_2 delta + (1 - beta_2) d
    n = beta_3 n + (1 - beta_3) (g + beta_2 d)**2
    D = sqrt(n) / sqrt(1 - beta_3**t) + eps
    caution: m_step = m * mask / max(mean(mask), 1e-3), mask = (m * g > 0)
    step = lr / (1 - beta_1**t) m_step / D + lr beta_2 / (1 - beta_2**t) delta / D
    no_prox: theta = theta (1 - lr wd) - step;   else theta = (theta - step) / (1 + lr wd)
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_adan
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyAdan(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.98, beta_2=0.92, beta_3=0.99,
                 epsilon=1e-8, weight_decay=0.0, no_prox=False, caution=False, maximize=False,
                 weight_decay_mask=None):
        self.betas = (float(beta_1), float(beta_2), float(beta_3))
        self.epsilon = float(epsilon)
        self.no_prox = bool(no_prox)
        self.caution = bool(caution)
        self._wd = float(weight_decay)
        # the decay is Adan's own: keep the base class from applying it
        super().__init__(params, learning_rate, 0.0, maximize, weight_decay_mask)

    def _new_state(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "delta": zeros, "n": zeros, "prev": None, "i": None}

    def step(self, grads):
        for i, state in enumerate(self.states):
            state["i"] = i
        return super().step(grads)

    def _update(self, param, g, state, lr, t):
        b1, b2, b3 = self.betas
        wd = self._wd if self.weight_decay_mask[state["i"]] else 0.0
        d = np.zeros_like(g) if state["prev"] is None else g - state["prev"]
        state["prev"] = g.copy()
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        state["delta"] = b2 * state["delta"] + (1.0 - b2) * d
        u = g + b2 * d
        state["n"] = b3 * state["n"] + (1.0 - b3) * u * u
        denom = np.sqrt(state["n"]) / math.sqrt(1.0 - b3 ** t) + self.epsilon
        m = state["m"]
        if self.caution:
            mask = (m * g > 0).astype(np.float64)
            m = m * mask / max(mask.mean(), 1e-3)
        update = (lr / (1.0 - b1 ** t)) * m / denom \
            + (lr * b2 / (1.0 - b2 ** t)) * state["delta"] / denom
        if self.no_prox:
            return param * (1.0 - lr * wd) - update
        return (param - update) / (1.0 + lr * wd)
