"""NumPy float64 reference of torch.optim.Adafactor (torch 2.13), written
from the algorithm in torch's docstring and its single-tensor code path.

For a parameter of 2+ dimensions the second moment is factored over the
last two dimensions::

    beta2_hat = 1 - t**beta2_decay;  w = t**beta2_decay
    rho = min(lr, 1/sqrt(t));  alpha = max(eps2, rms(theta)) * rho     (before decay)
    theta *= 1 - lr * wd                                               (decoupled)
    R = R + w * (mean(g**2, -1) - R);   C = C + w * (mean(g**2, -2) - C)
    V = R C / max(mean(R, -2), eps1)          (else V = V + w * (g**2 - V))
    U = g / sqrt(max(V, eps1**2));  theta -= alpha / max(1, rms(U) / d) * U

eps1 = None: float32's machine epsilon (the harness's parameters are float32).
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_adafactor
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def _rms(x):
    return math.sqrt(float(np.sum(x * x)) / max(x.size, 1))


class NumpyAdafactor(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-2, beta_2_decay=-0.8,
                 epsilon_1=None, epsilon_2=1e-3, clip_threshold=1.0,
                 weight_decay=0.0, maximize=False, weight_decay_mask=None,
                 eps_dtype=np.float32):
        self.beta_2_decay = float(beta_2_decay)
        self.eps1 = float(np.finfo(eps_dtype).eps) if epsilon_1 is None \
            else float(epsilon_1)
        self.eps2 = float(epsilon_2)
        self.d = float(clip_threshold)
        # the decay is applied in _update (after alpha is taken from the
        # undecayed parameter): the base class gets weight_decay 0
        self.wd = float(weight_decay)
        super().__init__(params, learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _new_state(self, param):
        if param.ndim >= 2:
            return {"row": np.zeros(param.shape[:-1] + (1,)),
                    "col": np.zeros(param.shape[:-2] + (1,) + param.shape[-1:])}
        return {"v": np.zeros(param.shape)}

    def _update(self, param, g, state, lr, t):
        w = t ** self.beta_2_decay
        rho = min(lr, 1.0 / math.sqrt(t))
        alpha = max(self.eps2, _rms(param)) * rho
        if state["decay"] and self.wd:
            param = param * (1.0 - lr * self.wd)
        if param.ndim >= 2:
            state["row"] += w * (np.mean(g * g, axis=-1, keepdims=True) - state["row"])
            state["col"] += w * (np.mean(g * g, axis=-2, keepdims=True) - state["col"])
            v = state["row"] * state["col"] / np.maximum(
                np.mean(state["row"], axis=-2, keepdims=True), self.eps1)
        else:
            state["v"] = state["v"] + w * (g * g - state["v"])
            v = state["v"]
        u = g / np.sqrt(np.maximum(v, self.eps1 ** 2))
        return param - alpha / max(1.0, _rms(u) / self.d) * u
