"""NumPy float64 reference of pytorch-optimizer 4.1.0's NorMuon, written
from its equations (``pytorch_optimizer/optimizer/muon/normuon.py``), with
every param of 2+ dimensions in a ``use_muon=True`` group and the others in
a ``use_muon=False`` group (plain arrays: read as stored)::

    NorMuon (ndim >= 2): theta *= 1 - lr wd
        B = B + (1 - mu)(g - B);  U = g + mu (B - g) if nesterov else B
        O = NS(U reshaped (rows, -1))   (np_muon.newton_schulz, eps 1e-7,
                                         timm's coefficient schedule)
        v = v + (1 - beta2)(mean_j O_ij^2 - v)      (one value per row)
        P = O / (sqrt(v) + eps)
        preserve_norm: P *= ||O|| / (||P|| + eps);  lr' = lr * s(rows, cols)
                       s = 0.2 sqrt(max) (use_adjusted_lr) or
                           sqrt(max(1, rows/cols))
        match_rms:     P *= 0.2 sqrt(rows cols) / (||P|| + eps);  lr' = lr
        theta -= lr' P
    AdamW (rest): theta *= 1 - lr_a wd_a; m, v lerps; bias corrections;
        theta -= lr_a / bc1 * m / (sqrt(v) / sqrt(bc2) + eps_a)
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
    from reference.np_muon import newton_schulz
except ImportError:  # imported as tests.reference.np_normuon
    from tests.reference.numpy_optimizers import _NumpyOptimizer
    from tests.reference.np_muon import newton_schulz


class NumpyNorMuon(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=2e-2, momentum=0.95,
                 beta_2=0.95, weight_decay=0.0, nesterov=True, ns_steps=5,
                 ns_coefficients="original", update_scale="preserve_norm",
                 use_adjusted_lr=False, epsilon=1e-10, ns_dtype="bfloat16",
                 exclude_embeddings=True, exclude_layers=None,
                 adamw_learning_rate=3e-4, adamw_beta_1=0.9,
                 adamw_beta_2=0.95, adamw_epsilon=1e-10,
                 adamw_weight_decay=0.0, maximize=False,
                 weight_decay_mask=None):
        self.mu = float(momentum)
        self.beta2 = float(beta_2)
        self.wd = float(weight_decay)
        self.nesterov = nesterov
        self.ns_steps = int(ns_steps)
        self.coefficients = ns_coefficients
        self.update_scale = update_scale
        self.adjusted = use_adjusted_lr
        self.eps = float(epsilon)
        self.adamw_lr = adamw_learning_rate
        self.betas = (float(adamw_beta_1), float(adamw_beta_2))
        self.adamw_eps = float(adamw_epsilon)
        self.adamw_wd = float(adamw_weight_decay)
        super().__init__(params, learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _new_state(self, param):
        if param.ndim >= 2:
            return {"buf": np.zeros(param.shape),
                    "v": np.zeros((param.shape[0], 1))}
        return {"m": np.zeros(param.shape), "v": np.zeros(param.shape)}

    def _update(self, param, g, state, lr, t):
        if param.ndim >= 2:
            if state["decay"]:
                param = param * (1 - lr * self.wd)
            buf = state["buf"] = state["buf"] + (1 - self.mu) * (g - state["buf"])
            u = g + self.mu * (buf - g) if self.nesterov else buf
            rows = param.shape[0]
            cols = param.size // rows
            o = newton_schulz(u.reshape(rows, cols), self.coefficients,
                              self.ns_steps, 1e-7)
            v = state["v"] = state["v"] + (1 - self.beta2) * (
                np.mean(o * o, axis=1, keepdims=True) - state["v"])
            p = o / (np.sqrt(v) + self.eps)
            norm = np.sqrt(np.sum(p * p)) + self.eps
            if self.update_scale == "preserve_norm":
                p = p * (np.sqrt(np.sum(o * o)) / norm)
                lr = lr * (0.2 * math.sqrt(max(rows, cols)) if self.adjusted
                           else math.sqrt(max(1.0, rows / cols)))
            else:
                p = p * (0.2 * math.sqrt(rows * cols) / norm)
            return param - lr * p.reshape(param.shape)
        lr_a = lr if self.adamw_lr is None else float(self.adamw_lr)
        b1, b2 = self.betas
        if state["decay"]:
            param = param * (1 - lr_a * self.adamw_wd)
        state["m"] = state["m"] + (1 - b1) * (g - state["m"])
        state["v"] = state["v"] + (1 - b2) * (g * g - state["v"])
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        denom = np.sqrt(state["v"]) / math.sqrt(bc2) + self.adamw_eps
        return param - lr_a / bc1 * state["m"] / denom
