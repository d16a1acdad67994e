"""NumPy float64 reference of Lion (lion-pytorch 0.2.5; timm's with caution).

Written from the paper's Algorithm 2 and the Cautious Optimizers paper::

    theta = theta * (1 - lr * wd)                  (decoupled, before)
    u = sign(beta_1 * m + (1 - beta_1) * g)
    caution: c = [u * g > 0];  u = u * c / max(mean(c), 1e-3)
    theta = theta - lr * u
    m = beta_2 * m + (1 - beta_2) * g
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def timm_mask(update, grad):
    c = (update * grad > 0).astype(np.float64)
    return update * c / max(float(np.mean(c)), 1e-3)


def pto_mask(update, grad):
    c = (update * grad > 0).astype(np.float64)
    return update * c * (c.size / (float(np.sum(c)) + 1.0))


class NumpyLion(_NumpyOptimizer):
    decoupled = True

    def __init__(self, params, *, learning_rate=1e-4, beta_1=0.9, beta_2=0.99,
                 weight_decay=0.0, caution=False, maximize=False,
                 weight_decay_mask=None):
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.caution = bool(caution)
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param)}

    def _update(self, param, g, state, lr, t):
        u = np.sign(self.beta_1 * state["m"] + (1 - self.beta_1) * g)
        if self.caution:
            u = timm_mask(u, g)
        state["m"] = self.beta_2 * state["m"] + (1 - self.beta_2) * g
        return param - lr * u
