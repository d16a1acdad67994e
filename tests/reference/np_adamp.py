"""NumPy float64 references of AdamP and SGDP as timm 1.0.31's ``AdamP`` / ``SGDP``
(clovaai's code), from the paper's equations.

Direction d: AdamP ``m/(sqrt(v)/sqrt(bc2) + eps)`` (nesterov: ``(b1 m + (1-b1) g)/(...)``), with
step size lr/bc1; SGDP ``b = mu b + (1 - dampening) g`` (b starts at 0), d = g + mu b (nesterov)
or b, step size lr.

Projection (rank >= 2): for the views V = (shape[0], -1) then (1, -1): if the largest
|cos(g_row, theta_row)| (each row divided by max(norm, eps)) is < delta / sqrt(row length),
d = d - th * <th, d>_row with th = theta / (||theta_row|| + eps), and the decay ratio is wd_ratio;
first view that qualifies wins. Caution (mask = (d * ref > 0), d = d * mask / max(mean(mask),
1e-3)): projected: ref = g - th <th, g>_row, then project d again; otherwise ref = g.

Decay (decoupled, from theta before the step): AdamP theta *= 1 - lr wd ratio;
SGDP theta *= 1 - lr wd ratio / (1 - mu). Then theta -= step_size * d.
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def _cautious(d, ref):
    mask = (d * ref > 0).astype(np.float64)
    return d * mask / max(mask.mean(), 1e-3)


def _project(theta, g, d, delta, wd_ratio, eps, caution):
    if theta.ndim > 1:
        for rows in (theta.shape[0], 1):
            tv, gv = theta.reshape(rows, -1), g.reshape(rows, -1)
            tn, gn = np.linalg.norm(tv, axis=1), np.linalg.norm(gv, axis=1)
            cos = np.abs(np.sum((gv / np.maximum(gn, eps)[:, None])
                                * (tv / np.maximum(tn, eps)[:, None]), axis=1))
            if cos.max() < delta / np.sqrt(tv.shape[1]):
                th = (tv / (tn + eps)[:, None])

                def radial(x):
                    xv = x.reshape(rows, -1)
                    return (th * np.sum(th * xv, axis=1)[:, None]).reshape(theta.shape)

                d = d - radial(d)
                if caution:
                    d = _cautious(d, g - radial(g))
                    d = d - radial(d)
                return d, wd_ratio
    if caution:
        d = _cautious(d, g)
    return d, 1.0


class NumpyAdamP(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, delta=0.1, wd_ratio=0.1, nesterov=False, caution=False,
                 maximize=False, weight_decay_mask=None):
        self.b1, self.b2, self.eps = float(beta_1), float(beta_2), float(epsilon)
        self.delta, self.wd_ratio, self.nesterov, self.caution = delta, wd_ratio, nesterov, caution
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def step(self, grads):
        self.iterations += 1
        t, lr, b1, b2 = self.iterations, float(self.learning_rate), self.b1, self.b2
        for i, (theta, g) in enumerate(zip(self.params, grads)):
            g = np.array(g, np.float64).reshape(theta.shape)
            if self.maximize:
                g = -g
            s = self.states[i]
            s["m"] = b1 * s["m"] + (1 - b1) * g
            s["v"] = b2 * s["v"] + (1 - b2) * g * g
            denom = np.sqrt(s["v"]) / np.sqrt(1 - b2 ** t) + self.eps
            d = ((b1 * s["m"] + (1 - b1) * g) if self.nesterov else s["m"]) / denom
            d, ratio = _project(theta, g, d, self.delta, self.wd_ratio, self.eps, self.caution)
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            theta = theta * (1 - lr * wd * ratio)
            self.params[i] = np.asarray(theta - lr / (1 - b1 ** t) * d, np.float64)
        return [p.copy() for p in self.params]


class NumpySGDP(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1e-3, momentum=0.0, dampening=0.0,
                 weight_decay=0.0, nesterov=False, epsilon=1e-8, delta=0.1, wd_ratio=0.1,
                 caution=False, maximize=False, weight_decay_mask=None):
        self.mu, self.dampening, self.nesterov = float(momentum), float(dampening), nesterov
        self.eps, self.delta, self.wd_ratio, self.caution = epsilon, delta, wd_ratio, caution
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"b": np.zeros_like(param)}

    def step(self, grads):
        self.iterations += 1
        lr, mu = float(self.learning_rate), self.mu
        for i, (theta, g) in enumerate(zip(self.params, grads)):
            g = np.array(g, np.float64).reshape(theta.shape)
            if self.maximize:
                g = -g
            s = self.states[i]
            s["b"] = mu * s["b"] + (1 - self.dampening) * g
            d = g + mu * s["b"] if self.nesterov else s["b"]
            d, ratio = _project(theta, g, d, self.delta, self.wd_ratio, self.eps, self.caution)
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            theta = theta * (1 - lr * wd * ratio / (1 - mu))
            self.params[i] = np.asarray(theta - lr * d, np.float64)
        return [p.copy() for p in self.params]
