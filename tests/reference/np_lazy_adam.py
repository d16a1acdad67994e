"""NumPy float64 reference of torch.optim.SparseAdam (torch 2.13), written from
its equations, on dense gradients whose all-zero rows count as absent.

For a row ``i`` present in step ``t`` (a row is a slice along the first axis
of a tensor of rank >= 2; each element of a 1-D or 0-d tensor is its own
row) and ``t`` the 1-based number of ``step()`` calls::

    m_i = m_i + (1 - beta_1) * (g_i - m_i)
    v_i = v_i + (1 - beta_2) * (g_i**2 - v_i)
    theta_i = theta_i - lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m_i / (sqrt(v_i) + eps)

Rows that are absent (gradient all zero) keep theta, m and v. A row holding a
NaN or inf counts as present. ``maximize`` negates the gradient first.
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer, _current
except ImportError:  # imported as tests.reference.np_lazy_adam
    from tests.reference.numpy_optimizers import _NumpyOptimizer, _current


def present_rows(grad):
    """Boolean mask broadcastable to ``grad``: the rows that count as present."""
    grad = np.asarray(grad)
    nonzero = grad != 0
    if grad.ndim <= 1:
        return nonzero
    return np.any(nonzero.reshape(grad.shape[0], -1), axis=1).reshape(
        (grad.shape[0],) + (1,) * (grad.ndim - 1))


class NumpyLazyAdam(_NumpyOptimizer):
    """torch.optim.SparseAdam on the nonzero rows of dense gradients."""

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, maximize=False, weight_decay_mask=None):
        self.beta_1 = beta_1
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        super().__init__(params, learning_rate, 0.0, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def _begin_step(self, t):
        self._b1 = _current(self.beta_1, t - 1)

    def _update(self, param, g, state, lr, t):
        b1, b2 = self._b1, self.beta_2
        mask = present_rows(g)
        m = state["m"] + (1.0 - b1) * (g - state["m"])
        v = state["v"] + (1.0 - b2) * (g * g - state["v"])
        step_size = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        with np.errstate(invalid="ignore", over="ignore"):
            new = param - step_size * m / (np.sqrt(v) + self.epsilon)
        state["m"] = np.where(mask, m, state["m"])
        state["v"] = np.where(mask, v, state["v"])
        return np.where(mask, new, param)
