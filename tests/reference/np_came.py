"""NumPy float64 reference of came-pytorch 0.1.3's CAME, written from the
equations of the paper (Luo et al., 2023, Algorithm 1) as came-pytorch
computes them.

For a parameter of 2+ dimensions (factored over its last two)::

    F(R, C) = (R / mean(R))**-0.5 [..., :, None] * C**-0.5 [..., None, :]
    R = b2 R + (1-b2) mean(g**2 + e1, -1);  C = b2 C + (1-b2) mean(g**2 + e1, -2)
    u = F(R, C) g;  u /= max(1, rms(u) / d)
    m = b1 m + (1-b1) u
    r = (u - m)**2 + e2
    R' = b3 R' + (1-b3) mean(r, -1);  C' = b3 C' + (1-b3) mean(r, -2)
    theta *= 1 - lr wd;  theta -= lr F(R', C') m

else V = b2 V + (1-b2)(g**2 + e1), u = g / sqrt(V) (clipped), the same m,
and theta -= lr m.
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_came
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def rms(x):
    return math.sqrt(float(np.sum(x * x)) / max(x.size, 1))


def factored_rsqrt(row, col):
    r = 1.0 / np.sqrt(row / np.mean(row, axis=-1, keepdims=True))
    return r[..., :, None] * (1.0 / np.sqrt(col))[..., None, :]


class NumpyCAME(_NumpyOptimizer):
    decoupled = True

    def __init__(self, params, *, learning_rate=2e-4, epsilon_1=1e-30,
                 epsilon_2=1e-16, clip_threshold=1.0, beta_1=0.9,
                 beta_2=0.999, beta_3=0.9999, weight_decay=0.0,
                 maximize=False, weight_decay_mask=None):
        self.e1, self.e2 = float(epsilon_1), float(epsilon_2)
        self.d = float(clip_threshold)
        self.b1, self.b2, self.b3 = float(beta_1), float(beta_2), float(beta_3)
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        state = {"m": np.zeros(param.shape)}
        if param.ndim >= 2:
            rows, cols = param.shape[:-1], param.shape[:-2] + param.shape[-1:]
            state.update(R=np.zeros(rows), C=np.zeros(cols),
                         Rr=np.zeros(rows), Cr=np.zeros(cols))
        else:
            state["V"] = np.zeros(param.shape)
        return state

    def _update(self, param, g, state, lr, t):
        b1, b2, b3 = self.b1, self.b2, self.b3
        sq = g * g + self.e1
        if param.ndim >= 2:
            state["R"] = b2 * state["R"] + (1 - b2) * sq.mean(axis=-1)
            state["C"] = b2 * state["C"] + (1 - b2) * sq.mean(axis=-2)
            u = factored_rsqrt(state["R"], state["C"]) * g
        else:
            state["V"] = b2 * state["V"] + (1 - b2) * sq
            u = g / np.sqrt(state["V"])
        u = u / max(1.0, rms(u) / self.d)
        state["m"] = b1 * state["m"] + (1 - b1) * u
        if param.ndim >= 2:
            r = (u - state["m"]) ** 2 + self.e2
            state["Rr"] = b3 * state["Rr"] + (1 - b3) * r.mean(axis=-1)
            state["Cr"] = b3 * state["Cr"] + (1 - b3) * r.mean(axis=-2)
            step = factored_rsqrt(state["Rr"], state["Cr"]) * state["m"]
        else:
            step = state["m"]
        return param - lr * step
