"""NumPy float64 reference of AdaBelief as in adabelief-pytorch 0.2.1, written
from its equations (``t`` the 1-based step)::

    decoupled:  theta = theta * (1 - lr * wd)   (fixed_decay: theta * (1 - wd))
    coupled:    g = g + wd * theta
    m = beta_1 * m + (1 - beta_1) * g
    s = beta_2 * s + (1 - beta_2) * (g - m)**2 + eps        (eps kept in s)
    amsgrad: s_max = max(s_max, s)
    not rectify: theta -= lr / (1 - beta_1**t) * m / (sqrt(s_hat) / sqrt(1 - beta_2**t) + eps)
                 with s_hat = s_max under amsgrad, else s
    rectify: rho_inf = 2 / (1 - beta_2) - 1, rho = rho_inf - 2 t beta_2**t / (1 - beta_2**t)
        rho >= 5: r = sqrt((1 - beta_2**t) (rho-4)/(rho_inf-4) (rho-2)/rho rho_inf/(rho_inf-2))
                  theta -= lr * r / (1 - beta_1**t) * m / (sqrt(s) + eps)
        else: degenerated_to_sgd: theta -= lr / (1 - beta_1**t) * m;  otherwise no step
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_adabelief
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyAdaBelief(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-16,
                 weight_decay=0.0, amsgrad=False, decoupled_weight_decay=True, fixed_decay=False,
                 rectify=True, degenerated_to_sgd=True, maximize=False, weight_decay_mask=None):
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = bool(amsgrad)
        self.fixed_decay = bool(fixed_decay)
        self.decoupled = bool(decoupled_weight_decay) and not self.fixed_decay
        self._fixed = bool(decoupled_weight_decay) and self.fixed_decay
        self._wd = float(weight_decay)
        self.rectify = bool(rectify)
        self.degenerated_to_sgd = bool(degenerated_to_sgd)
        # fixed decay is applied in _update (the base knows only lr * wd)
        super().__init__(params, learning_rate, 0.0 if self._fixed else weight_decay, maximize,
                         weight_decay_mask)
        self._index = 0

    def _new_state(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "s": zeros, "smax": zeros, "i": None}

    def step(self, grads):
        # remember each param's position for the fixed-decay mask
        for i, state in enumerate(self.states):
            state["i"] = i
        return super().step(grads)

    def _update(self, param, g, state, lr, t):
        b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
        if self._fixed and self.weight_decay_mask[state["i"]]:
            param = param * (1.0 - self._wd)
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        r = g - state["m"]
        state["s"] = b2 * state["s"] + (1.0 - b2) * r * r + eps
        state["smax"] = np.maximum(state["smax"], state["s"])
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        if not self.rectify:
            second = state["smax"] if self.amsgrad else state["s"]
            return param - lr / bc1 * state["m"] / (np.sqrt(second) / math.sqrt(bc2) + eps)
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho = rho_inf - 2.0 * t * b2 ** t / bc2
        if rho >= 5.0:
            r_t = math.sqrt(bc2 * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) / rho
                            * rho_inf / (rho_inf - 2.0))
            return param - lr * r_t / bc1 * state["m"] / (np.sqrt(state["s"]) + eps)
        if self.degenerated_to_sgd:
            return param - lr / bc1 * state["m"]
        return param
