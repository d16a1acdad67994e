"""NumPy float64 reference of LARS / LARC as timm 1.0.31's ``Lars``, from its equations.

Per parameter, when wd != 0 or always_adapt::

    r = trust_coefficient * ||theta|| / (||g|| + wd * ||theta|| + eps)   (1 if a norm is 0)
    trust_clip (LARC):  r = min(r / lr, 1)
    g = (g + wd * theta) * r
then torch SGD: b = g on the first step, else b = mu b + (1 - dampening) g;
d = g + mu b (nesterov) or b (mu == 0: d = g); theta = theta - lr * d.
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference
    from tests.reference.numpy_optimizers import _NumpyOptimizer


class NumpyLars(_NumpyOptimizer):

    def __init__(self, params, *, learning_rate=1.0, momentum=0.0, dampening=0.0,
                 weight_decay=0.0, nesterov=False, trust_coefficient=1e-3, epsilon=1e-8,
                 trust_clip=False, always_adapt=False, maximize=False, weight_decay_mask=None):
        self.momentum, self.dampening, self.nesterov = float(momentum), float(dampening), nesterov
        self.tc, self.epsilon = float(trust_coefficient), float(epsilon)
        self.trust_clip, self.always_adapt = trust_clip, always_adapt
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"buf": None}

    def step(self, grads):
        self.iterations += 1
        lr = float(self.learning_rate)
        for i, (theta, g) in enumerate(zip(self.params, grads)):
            g = np.array(g, np.float64).reshape(theta.shape)
            if self.maximize:
                g = -g
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            if wd != 0.0 or self.always_adapt:
                wn, gn = np.linalg.norm(theta), np.linalg.norm(g)
                r = self.tc * wn / (gn + wd * wn + self.epsilon) if wn > 0 and gn > 0 else 1.0
                if self.trust_clip:
                    r = min(r / lr, 1.0)
                g = (g + wd * theta) * r
            s = self.states[i]
            if self.momentum != 0.0:
                s["buf"] = g.copy() if s["buf"] is None else \
                    self.momentum * s["buf"] + (1.0 - self.dampening) * g
                g = g + self.momentum * s["buf"] if self.nesterov else s["buf"]
            self.params[i] = np.asarray(theta - lr * g, np.float64)
        return [p.copy() for p in self.params]
