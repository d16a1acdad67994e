"""NumPy float64 reference of LAMB as timm 1.0.31's ``Lamb`` (NvLamb), from its equations.

Per step t (1-based): all gradients are divided by ``c = max(||(g_1..g_n)|| / max_grad_norm, 1)``
(one norm over every parameter; skipped when max_grad_norm is None). Then per parameter::

    m = beta_1 m + beta_3 g            (beta_3 = 1 - beta_1 with grad_averaging, else 1)
    v = beta_2 v + (1 - beta_2) g**2
    u = (m / bc1) / (sqrt(v) / sqrt(bc2) + eps)        (bc = 1 - beta**t, or 1 without bias_correction)
    caution:  u = u * mask / max(mean(mask), 1e-3),  mask = (u * g > 0)
    wd != 0:  u = u + wd * theta,  or with decoupled decay theta = theta * (1 - lr * wd)
    wd != 0 or always_adapt:  u = u * r,  r = ||theta|| / ||u|| (1 if a norm is 0; min(r, 1) with trust_clip)
    theta = theta - lr * u
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyLamb(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, bias_correction=True, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-6, weight_decay=0.01, grad_averaging=True,
                 max_grad_norm=1.0, trust_clip=False, always_adapt=False, caution=False,
                 decoupled_weight_decay=False, maximize=False, weight_decay_mask=None):
        self.bias_correction = bias_correction
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.grad_averaging = grad_averaging
        self.max_grad_norm = max_grad_norm
        self.trust_clip, self.always_adapt, self.caution = trust_clip, always_adapt, caution
        self.decoupled_decay = decoupled_weight_decay
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, grads):
        self.iterations += 1
        t, lr = self.iterations, float(self.learning_rate)
        gs = [np.array(g, np.float64).reshape(p.shape) for g, p in zip(grads, self.params)]
        if self.max_grad_norm is not None:
            total = np.sqrt(sum(np.sum(g * g) for g in gs))
            gs = [g / max(total / self.max_grad_norm, 1.0) for g in gs]
        b1, b2 = self.beta_1, self.beta_2
        b3 = 1.0 - b1 if self.grad_averaging else 1.0
        bc1, bc2 = (1.0 - b1 ** t, 1.0 - b2 ** t) if self.bias_correction else (1.0, 1.0)
        for i, (theta, g) in enumerate(zip(self.params, gs)):
            if self.maximize:
                g = -g
            s = self.states[i]
            s["m"] = b1 * s["m"] + b3 * g
            s["v"] = b2 * s["v"] + (1.0 - b2) * g * g
            u = (s["m"] / bc1) / (np.sqrt(s["v"]) / np.sqrt(bc2) + self.epsilon)
            if self.caution:
                mask = (u * g > 0).astype(np.float64)
                u = u * mask / max(mask.mean(), 1e-3)
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            if wd != 0.0:
                if self.decoupled_decay:
                    theta = theta * (1.0 - lr * wd)
                else:
                    u = u + wd * theta
            if wd != 0.0 or self.always_adapt:
                wn, un = np.linalg.norm(theta), np.linalg.norm(u)
                r = wn / un if wn > 0 and un > 0 else 1.0
                u = u * (min(r, 1.0) if self.trust_clip else r)
            self.params[i] = np.asarray(theta - lr * u, np.float64)
        return [p.copy() for p in self.params]
