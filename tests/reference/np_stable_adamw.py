"""NumPy float64 reference of StableAdamW as torch-optimi 0.3.3's ``StableAdamW``, from its equations.

Per step t (1-based), with debiased betas ``hat(beta) = beta * (1 - beta**(t-1)) / (1 - beta**t)``::

    m = hat(beta_1) m + (1 - hat(beta_1)) g
    v = hat(beta_2) v + (1 - hat(beta_2)) g**2
    rms = sqrt(mean(g**2 / max(v, eps**2)))            (over the whole tensor)
    lr_t = lr / max(1, rms)                            (a NaN rms leaves lr as it is)
    wd != 0:  theta = theta * (1 - lr_t * wd),  or with decouple_lr  theta * (1 - lr_t / max_lr * wd)
    theta = theta - lr_t * m / (sqrt(v) + eps)

max_lr defaults to the constructor's learning rate with decouple_lr. Kahan summation changes only
low-precision rounding, which a float64 reference does not have.
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def _debias(beta, t):
    return beta * (1.0 - beta ** (t - 1)) / (1.0 - beta ** t)


class NumpyStableAdamW(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9, beta_2=0.99, weight_decay=1e-2,
                 epsilon=1e-6, decouple_lr=False, max_lr=None, kahan_sum=None, maximize=False,
                 weight_decay_mask=None):
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.decouple_lr = decouple_lr
        self.max_lr = float(learning_rate) if max_lr is None else float(max_lr)
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, grads):
        self.iterations += 1
        t, lr = self.iterations, float(self.learning_rate)
        h1, h2 = _debias(self.beta_1, t), _debias(self.beta_2, t)
        for i, (theta, grad) in enumerate(zip(self.params, grads)):
            g = np.array(grad, np.float64).reshape(theta.shape)
            if self.maximize:
                g = -g
            s = self.states[i]
            s["m"] = h1 * s["m"] + (1.0 - h1) * g
            s["v"] = h2 * s["v"] + (1.0 - h2) * g * g
            rms = math.sqrt(np.mean(g * g / np.maximum(s["v"], self.epsilon ** 2)))
            lr_t = lr / max(1.0, rms)
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            if wd != 0.0:
                rate = lr_t / self.max_lr if self.decouple_lr else lr_t
                theta = theta * (1.0 - rate * wd)
            theta = theta - lr_t * s["m"] / (np.sqrt(s["v"]) + self.epsilon)
            self.params[i] = np.asarray(theta, np.float64)
        return [p.copy() for p in self.params]
