"""NumPy float64 reference of torch.optim.Muon (torch 2.13) for 2-D params
plus torch.optim.AdamW for every other param, written from torch's
equations (single-tensor path)::

    Muon (2-D):  B = B + (1 - mu) (g - B)              (lerp)
                 U = g + mu (B - g) if nesterov else B
                 X = U (transposed if rows > cols);  X /= max(||X||_F, eps)
                 step i of k: A = X X^T;  X = a_i X + (b_i A + c_i A A) X
                 ((a_i, b_i, c_i) timm's schedule resolution: one
                 triple every step, or a list truncated to k / its last
                 triple repeated, or a timm name)
                 theta *= 1 - lr wd;  theta -= lr * s * X
                 s = sqrt(max(1, A/B)) ("original"/None) or
                     0.2 sqrt(max(A, B)) ("match_rms_adamw")
                 (A, B) = (rows, cols): a plain 2-D array is read as
                 stored (the layout rule maps only layers' kernels), as
                 torch reads a tensor's shape
    AdamW (rest): theta *= 1 - lr_a wd_a; m, v as Adam; bias corrections;
                 theta -= lr_a / bc1 * m / (sqrt(v) / sqrt(bc2) + eps_a)

The Newton-Schulz iteration runs in float64 here (the oracle of
``ns_dtype="float32"``). Routing by name (embeddings, ``exclude_layers``)
does not exist for plain arrays: every 2-D array is a Muon matrix.
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_muon
    from tests.reference.numpy_optimizers import _NumpyOptimizer


#: timm 1.0.31's named schedules (timm/optim/muon.py ``_COEFFICIENTS``)
def _named(name):
    try:
        from reference.external import timm_optim
    except ImportError:  # imported as tests.reference.np_muon
        from tests.reference.external import timm_optim
    return [tuple(c) for c in timm_optim("muon")._COEFFICIENTS[name]]


def coefficient_schedule(coefficients, steps):
    """timm's resolution: a name is its table, one triple a list of one;
    the first ``steps`` triples, the last repeated when the list is
    shorter."""
    if isinstance(coefficients, str):
        table = _named(coefficients)
    elif len(coefficients) == 3 and all(
            isinstance(c, (int, float)) for c in coefficients):
        table = [tuple(coefficients)]
    else:
        table = [tuple(c) for c in coefficients]
    return [table[min(i, len(table) - 1)] for i in range(steps)]


def newton_schulz(u, coefficients, steps, eps):
    """``coefficients``: a triple, a list of triples or a timm name."""
    x = np.array(u, dtype=np.float64)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    x = x / max(float(np.sqrt(np.sum(x * x))), eps)
    for a, b, c in coefficient_schedule(coefficients, steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


class NumpyMuon(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-3, weight_decay=0.1,
                 momentum=0.95, nesterov=True,
                 ns_coefficients=(3.4445, -4.775, 2.0315), epsilon=1e-7,
                 ns_steps=5, adjust_lr_fn=None, ns_dtype="bfloat16",
                 exclude_embeddings=True, exclude_layers=None,
                 adamw_learning_rate=None, adamw_beta_1=0.9,
                 adamw_beta_2=0.999, adamw_epsilon=1e-8,
                 adamw_weight_decay=1e-2, maximize=False,
                 weight_decay_mask=None):
        self.wd = float(weight_decay)
        self.mu = float(momentum)
        self.nesterov = nesterov
        self.coefficients = ns_coefficients
        self.eps = float(epsilon)
        self.ns_steps = int(ns_steps)
        self.adjust = adjust_lr_fn
        self.adamw_lr = adamw_learning_rate
        self.betas = (float(adamw_beta_1), float(adamw_beta_2))
        self.adamw_eps = float(adamw_epsilon)
        self.adamw_wd = float(adamw_weight_decay)
        super().__init__(params, learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _new_state(self, param):
        if param.ndim == 2:
            return {"buf": np.zeros(param.shape)}
        return {"m": np.zeros(param.shape), "v": np.zeros(param.shape)}

    def _update(self, param, g, state, lr, t):
        if param.ndim == 2:
            buf = state["buf"] = state["buf"] + (1 - self.mu) * (g - state["buf"])
            u = g + self.mu * (buf - g) if self.nesterov else buf
            x = newton_schulz(u, self.coefficients, self.ns_steps, self.eps)
            fan_out, fan_in = param.shape  # torch's (A, B)
            if self.adjust == "match_rms_adamw":
                scale = 0.2 * math.sqrt(max(fan_out, fan_in))
            else:
                scale = math.sqrt(max(1.0, fan_out / fan_in))
            if state["decay"]:
                param = param * (1 - lr * self.wd)
            return param - lr * scale * x
        lr_a = lr if self.adamw_lr is None else float(self.adamw_lr)
        b1, b2 = self.betas
        if state["decay"]:
            param = param * (1 - lr_a * self.adamw_wd)
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g * g
        bc1, bc2 = 1 - b1 ** t, 1 - b2 ** t
        denom = np.sqrt(state["v"]) / math.sqrt(bc2) + self.adamw_eps
        return param - lr_a / bc1 * state["m"] / denom
