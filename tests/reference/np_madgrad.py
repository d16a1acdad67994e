"""NumPy float64 reference of MADGRAD (timm 1.0.31 / facebookresearch).

From Defazio and Jelassi 2021 Algorithm 1 with the reference code's choices
(lambda uses lr + eps; eps added to the cube root)::

    lam = (lr + eps) * sqrt(t)
    decay: decoupled theta *= 1 - lr * wd, else g += wd * theta
           (x0 = theta before the first step's decay)
    momentum == 0: x0 = theta + s / (S^(1/3) + eps)      (current values)
    S += lam * g^2;  s += lam * g;  z = x0 - s / (S^(1/3) + eps)
    theta = momentum * theta + (1 - momentum) * z
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyMADGRAD(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-2, momentum=0.9,
                 weight_decay=0.0, epsilon=1e-6, decoupled_weight_decay=False,
                 maximize=False, weight_decay_mask=None):
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.wd = float(weight_decay)
        self.decoupled_mode = bool(decoupled_weight_decay)
        super().__init__(params, learning_rate, 0.0, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"S": np.zeros_like(param), "s": np.zeros_like(param),
                "x0": param.copy()}

    def step(self, grads):
        self._index = 0
        return super().step(grads)

    def _update(self, param, g, state, lr, t):
        i, self._index = self._index, self._index + 1
        eps = self.epsilon
        lam = (lr + eps) * np.sqrt(t)
        if self.wd and self.weight_decay_mask[i]:
            if self.decoupled_mode:
                param = param * (1 - lr * self.wd)
            else:
                g = g + self.wd * param
        if self.momentum == 0:
            x0 = param + state["s"] / (np.cbrt(state["S"]) + eps)
        else:
            x0 = state["x0"]
        state["S"] = state["S"] + lam * g * g
        state["s"] = state["s"] + lam * g
        z = x0 - state["s"] / (np.cbrt(state["S"]) + eps)
        return self.momentum * param + (1 - self.momentum) * z
