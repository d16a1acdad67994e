"""NumPy float64 reference of MARS as timm 1.0.31's ``Mars``, from its equations.

Per step t (1-based), for a parameter of rank >= 2 (every parameter with optimize_1d)::

    c = g + gamma * beta_1 / (1 - beta_1) * (g - g_prev)      (c = g on the first step)
    c = c / max(||c||, 1)                                      (2-norm of the whole tensor)
    m = beta_1 m + (1 - beta_1) c
    d = m, or with caution  m * mask / max(mean(mask), 1e-3),  mask = (m * g > 0)
    adamw:  v = beta_2 v + (1 - beta_2) c**2,  u = (d / (1 - beta_1**t)) / (sqrt(v) / sqrt(1 - beta_2**t) + eps)
    lion:   u = sign(d)  (sign(NaN) = 0)
    theta = theta - lr * (u + wd * theta)

and for the others AdamW on g with (beta_1_1d, beta_2_1d) (None: beta_1, beta_2)::

    m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g**2,  d as above
    u = (d / (1 - b1**t)) / (sqrt(v) / sqrt(1 - b2**t) + eps)
    theta = theta - lr * lr_1d_factor * (u + wd * theta)

g_prev is the previous step's gradient (after the maximize negation, an extension).
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def _caution(m, g):
    mask = (m * g > 0).astype(np.float64)
    return m * mask / max(mask.mean(), 1e-3)


class NumpyMars(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=3e-3, beta_1=0.9, beta_2=0.99, epsilon=1e-8,
                 weight_decay=0.0, gamma=0.025, mars_type="adamw", optimize_1d=False,
                 lr_1d_factor=1.0, beta_1_1d=None, beta_2_1d=None, caution=False,
                 maximize=False, weight_decay_mask=None):
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.gamma, self.mars_type, self.optimize_1d = float(gamma), mars_type, optimize_1d
        self.lr_1d_factor = float(lr_1d_factor)
        self.beta_1_1d = self.beta_1 if beta_1_1d is None else float(beta_1_1d)
        self.beta_2_1d = self.beta_2 if beta_2_1d is None else float(beta_2_1d)
        self.caution = caution
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param),
                "prev": np.zeros_like(param)}

    def _adam(self, m, v, g, b1, b2, t):
        d = _caution(m, g) if self.caution else m
        return (d / (1.0 - b1 ** t)) / (np.sqrt(v) / np.sqrt(1.0 - b2 ** t) + self.epsilon)

    def step(self, grads):
        self.iterations += 1
        t, lr = self.iterations, float(self.learning_rate)
        for i, (theta, grad) in enumerate(zip(self.params, grads)):
            g = np.array(grad, np.float64).reshape(theta.shape)
            if self.maximize:
                g = -g
            s = self.states[i]
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            if self.optimize_1d or theta.ndim >= 2:
                b1, b2 = self.beta_1, self.beta_2
                c = g if t == 1 else g + self.gamma * b1 / (1.0 - b1) * (g - s["prev"])
                c = c / max(float(np.sqrt(np.sum(c * c))), 1.0)  # NaN stays NaN
                s["m"] = b1 * s["m"] + (1.0 - b1) * c
                if self.mars_type == "adamw":
                    s["v"] = b2 * s["v"] + (1.0 - b2) * c * c
                    u = self._adam(s["m"], s["v"], g, b1, b2, t)
                else:
                    d = _caution(s["m"], g) if self.caution else s["m"]
                    u = np.nan_to_num(np.sign(d), nan=0.0)
                step = lr
            else:
                b1, b2 = self.beta_1_1d, self.beta_2_1d
                s["m"] = b1 * s["m"] + (1.0 - b1) * g
                s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
                u = self._adam(s["m"], s["v"], g, b1, b2, t)
                step = lr * self.lr_1d_factor
            s["prev"] = g
            self.params[i] = np.asarray(theta - step * (u + wd * theta), np.float64)
        return [p.copy() for p in self.params]
