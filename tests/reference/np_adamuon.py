"""NumPy float64 reference of timm 1.0.31's Muon(algo="adamuon"), written
from its equations (plain arrays read as stored; routing by timm's
``_is_suitable_for_muon`` rule)::

    both rules: theta *= 1 - lr_rule wd
    AdaMuon: B = B + (1 - mu)(g - B);  U = g + mu (B - g) if nesterov else B
        O = NS(U reshaped (rows, -1));  v = beta2 v + (1 - beta2) O^2
        match_rms_adamw: P = O / (sqrt(v) + eps); P /= ||P|| + eps;
                         s = 0.2 sqrt(rows cols)
        else: P = O / (sqrt(v / (1 - beta2^t)) + eps); s = 1 | sqrt(r/c) |
              c^-1/2
        theta -= lr s P
    fallback (lr_f = lr * fallback scale): Adam moments; numerator m, or
        m + (1 - beta1)(g - m) with nesterov (timm's NAdamW);
        theta -= lr_f / bc1 * num / (sqrt(v) / sqrt(bc2) + eps)
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
    from reference.np_muon import newton_schulz
except ImportError:  # imported as tests.reference.np_adamuon
    from tests.reference.numpy_optimizers import _NumpyOptimizer
    from tests.reference.np_muon import newton_schulz


def _suitable(s):
    if len(s) < 2 or sum(d > 1 for d in s) < 2 or s[0] == 1 or s[1] == 1:
        return False
    dims = (s[0], math.prod(s[1:]))
    return min(dims) >= 4 and max(dims) / min(dims) <= 128


class NumpyAdaMuon(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=0.02, weight_decay=0.0,
                 momentum=0.95, nesterov=False, ns_steps=5,
                 ns_coefficients="quintic", epsilon=1e-7,
                 adjust_lr_fn="match_rms_adamw", beta_1=0.9, beta_2=0.95,
                 fallback_learning_rate_scale=1.0, ns_dtype="bfloat16",
                 exclude_layers=None, maximize=False,
                 weight_decay_mask=None):
        self.wd = float(weight_decay)
        self.mu = float(momentum)
        self.nesterov = nesterov
        self.ns_steps = ns_steps
        self.coefficients = ns_coefficients
        self.eps = float(epsilon)
        self.adjust = adjust_lr_fn
        self.b1, self.b2 = float(beta_1), float(beta_2)
        self.scale = float(fallback_learning_rate_scale)
        super().__init__(params, learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _new_state(self, param):
        if _suitable(param.shape):
            return {"buf": np.zeros(param.shape), "v": np.zeros(param.shape)}
        return {"m": np.zeros(param.shape), "v": np.zeros(param.shape)}

    def _update(self, param, g, state, lr, t):
        if "buf" in state:
            if state["decay"]:
                param = param * (1 - lr * self.wd)
            buf = state["buf"] = state["buf"] + (1 - self.mu) * (g - state["buf"])
            u = g + self.mu * (buf - g) if self.nesterov else buf
            rows = param.shape[0]
            cols = param.size // rows
            o = newton_schulz(u.reshape(rows, cols), self.coefficients,
                              self.ns_steps, self.eps).reshape(param.shape)
            v = state["v"] = self.b2 * state["v"] + (1 - self.b2) * o * o
            if self.adjust == "match_rms_adamw":
                p = o / (np.sqrt(v) + self.eps)
                p = p / (np.sqrt(np.sum(p * p)) + self.eps)
                s = 0.2 * math.sqrt(rows * cols)
            else:
                p = o / (np.sqrt(v / (1 - self.b2 ** t)) + self.eps)
                s = {None: 1.0, "rms_to_rms": math.sqrt(rows / cols),
                     "rsqrt_in": cols ** -0.5}[self.adjust]
            return param - lr * s * p
        lr = lr * self.scale
        if state["decay"]:
            param = param * (1 - lr * self.wd)
        m = state["m"] = state["m"] + (1 - self.b1) * (g - state["m"])
        v = state["v"] = self.b2 * state["v"] + (1 - self.b2) * g * g
        num = m + (1 - self.b1) * (g - m) if self.nesterov else m
        denom = np.sqrt(v) / math.sqrt(1 - self.b2 ** t) + self.eps
        return param - lr / (1 - self.b1 ** t) * num / denom
