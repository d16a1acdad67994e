"""NumPy float64 reference of NovoGrad as timm 1.0.31's ``NvNovoGrad`` (NVIDIA's), from its equations.

Per parameter, with n = sum(g**2) (one number per parameter)::

    v = n if v == 0 else beta_2 v + (1 - beta_2) n          (v starts at 0)
    amsgrad: vmax = max(vmax, v), used instead of v
    u = g / (sqrt(v) + eps)
    wd != 0: u = u + wd * theta   (or, decoupled, theta = theta * (1 - lr * wd))
    grad_averaging: u = u * (1 - beta_1)
    m = beta_1 m + u;  theta = theta - lr * m
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyNovoGrad(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.95, beta_2=0.98, epsilon=1e-8,
                 weight_decay=0.0, grad_averaging=False, amsgrad=False,
                 decoupled_weight_decay=False, maximize=False, weight_decay_mask=None):
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.grad_averaging, self.amsgrad = grad_averaging, amsgrad
        self.decoupled_decay = decoupled_weight_decay
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": 0.0, "vmax": 0.0}

    def step(self, grads):
        self.iterations += 1
        lr = float(self.learning_rate)
        for i, (theta, g) in enumerate(zip(self.params, grads)):
            g = np.array(g, np.float64).reshape(theta.shape)
            if self.maximize:
                g = -g
            s = self.states[i]
            n = float(np.sum(g * g))
            s["v"] = n if s["v"] == 0.0 else self.beta_2 * s["v"] + (1.0 - self.beta_2) * n
            second = s["v"]
            if self.amsgrad:
                s["vmax"] = max(s["vmax"], s["v"])
                second = s["vmax"]
            u = g / (np.sqrt(second) + self.epsilon)
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            if wd != 0.0:
                if self.decoupled_decay:
                    theta = theta * (1.0 - lr * wd)
                else:
                    u = u + wd * theta
            if self.grad_averaging:
                u = u * (1.0 - self.beta_1)
            s["m"] = self.beta_1 * s["m"] + u
            self.params[i] = np.asarray(theta - lr * s["m"], np.float64)
        return [p.copy() for p in self.params]
