"""NumPy float64 reference of transformers 5.24.0's Adafactor, written from
the algorithm (Shazeer and Stern, 2018, with fairseq's choices) as
transformers computes it::

    rho = min(1e-6 t if warmup_init else 1e-2, 1/sqrt(t))  if relative_step  else lr
    alpha = rho * max(eps2, rms(theta))  if scale_parameter  else rho     (theta before the step)
    w = t**decay_rate                                                     (1 - beta2_t)
    R = (1-w) R + w mean(g**2 + eps1, -1);  C = (1-w) C + w mean(g**2 + eps1, -2)
    u = (R / mean(R))**-0.5 [..., :, None] * C**-0.5 [..., None, :] * g
        (else V = (1-w) V + w (g**2 + eps1), u = g / sqrt(V))
    u = alpha * u / max(1, rms(u) / d)
    m = b1 m + (1-b1) u;  u = m                                           (only with beta_1)
    theta = theta - wd alpha theta - u
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
    from reference.np_came import factored_rsqrt, rms
except ImportError:  # imported as tests.reference.np_hf_adafactor
    from tests.reference.numpy_optimizers import _NumpyOptimizer
    from tests.reference.np_came import factored_rsqrt, rms


class NumpyHFAdafactor(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=None, epsilon_1=1e-30,
                 epsilon_2=1e-3, clip_threshold=1.0, decay_rate=-0.8,
                 beta_1=None, weight_decay=0.0, scale_parameter=True,
                 relative_step=True, warmup_init=False, maximize=False,
                 weight_decay_mask=None):
        self.e1, self.e2 = float(epsilon_1), float(epsilon_2)
        self.d, self.c = float(clip_threshold), float(decay_rate)
        self.b1 = beta_1
        self.scale, self.relative, self.warmup = (scale_parameter,
                                                  relative_step, warmup_init)
        # the decay is applied in _update, scaled by alpha: the base gets 0
        self.wd = float(weight_decay)
        super().__init__(params, 0.0 if learning_rate is None
                         else learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _new_state(self, param):
        state = {"m": np.zeros(param.shape)}
        if param.ndim >= 2:
            state.update(R=np.zeros(param.shape[:-1]),
                         C=np.zeros(param.shape[:-2] + param.shape[-1:]))
        else:
            state["V"] = np.zeros(param.shape)
        return state

    def _update(self, param, g, state, lr, t):
        if self.relative:
            rho = min(1e-6 * t if self.warmup else 1e-2, 1.0 / math.sqrt(t))
        else:
            rho = lr
        alpha = rho * max(self.e2, rms(param)) if self.scale else rho
        w = float(t) ** self.c
        sq = g * g + self.e1
        if param.ndim >= 2:
            state["R"] = (1 - w) * state["R"] + w * sq.mean(axis=-1)
            state["C"] = (1 - w) * state["C"] + w * sq.mean(axis=-2)
            u = factored_rsqrt(state["R"], state["C"]) * g
        else:
            state["V"] = (1 - w) * state["V"] + w * sq
            u = g / np.sqrt(state["V"])
        u = alpha * u / max(1.0, rms(u) / self.d)
        if self.b1 is not None:
            state["m"] = self.b1 * state["m"] + (1 - self.b1) * u
            u = state["m"]
        if state["decay"]:
            param = param - self.wd * alpha * param
        return param - u
