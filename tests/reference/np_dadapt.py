"""NumPy float64 references of Prodigy (prodigyopt 1.1.2, slice_p=1) and
D-Adaptation Adam / SGD (dadaptation 3.2), written from their equations.

All three keep one step-size estimate ``d`` for every parameter. A step first
accumulates sums over all parameters (with the state from before the step),
then updates ``d``, then moves the parameters. ``t`` counts calls of
``step()``; ``k`` counts the steps that moved (a step whose denominator sum
is 0 moves nothing and leaves ``k`` as it was). Gradients are negated first
with ``maximize``; ``weight_decay_mask[i] = False`` exempts parameter ``i``
from weight decay. One param group; the learning rate is ``lr``.

Prodigy (beta_3 defaults to sqrt(beta_2); rho = sqrt(1 - b2**(k+1)) /
(1 - b1**(k+1)) with use_bias_correction, else 1; eta = d lr rho)::

    g += wd x                       (coupled, decouple=False)
    x0 = x at the parameter's first step
    r = b3 r + sum_i (d / d0) eta <g_i, x0_i - x_i>
    m = b1 m + d (1 - b1) g ;  v = b2 v + d^2 (1 - b2) g^2
    s = b3 s + (d / d0) (d if safeguard_warmup else eta) g
    D = sum_i |s_i|_1 ; stop here (nothing moves) if D == 0
    dh = d_coef r / D
    if d == d0: d = max(d, dh)
    d_max = max(d_max, dh) ;  d = min(d_max, growth_rate d)
    x -= wd eta x                   (decoupled, decouple=True)
    x -= eta m / (sqrt(v) + d eps)  (beta_1 = 0: x -= eta d g / (sqrt(v) + d eps))

DAdaptAdam (bs = sqrt(b2); r = layer_scale)::

    g += wd x                       (coupled)
    n_acc = sum_i r eta <g_i, s_i / (sqrt(v_i) + eps)>
    m = b1 m + r eta (1 - b1) g ;  v = b2 v + (1 - b2) g^2
    s = bs s + eta (1 - bs) g
    S = sum_i r |s_i|_1 ;  n = bs n + (1 - bs) n_acc
    stop here (nothing moves) if S == 0
    d = max(d, min(n / ((1 - bs) S), growth_rate d))
    x -= wd eta x                   (decoupled)
    x -= m / (sqrt(v) + eps)

DAdaptSGD (G: norm of the gradients of the first step, without decay)::

    eta = d lr / G ;  g += wd x
    n = n + sum_i eta <g_i, s_i> ;  s = s + eta g
    S2 = sum_i |s_i|^2 ; stop here (nothing moves) if S2 == 0
    d = max(d, min(2 n / sqrt(S2), growth_rate d))
    x = (1 - c) x + c (x0 - s),  c = 1 - momentum
"""

import math

import numpy as np


def _maximum(a, b):
    """Python's max(a, b): ``a`` unless ``b`` is strictly greater."""
    return b if b > a else a


def _minimum(a, b):
    """Python's min(a, b): ``a`` unless ``b`` is strictly smaller."""
    return b if b < a else a


class _Base:

    def __init__(self, params, learning_rate, weight_decay, maximize,
                 weight_decay_mask):
        self.params = [np.array(p, np.float64, copy=True) for p in params]
        self.learning_rate = learning_rate
        self.weight_decay = float(weight_decay)
        self.maximize = bool(maximize)
        if weight_decay_mask is None:
            weight_decay_mask = [True] * len(self.params)
        self.weight_decay_mask = [bool(m) for m in weight_decay_mask]
        self.k = 0

    def _grads(self, grads):
        out = []
        for g, p in zip(grads, self.params):
            g = np.array(g, np.float64).reshape(p.shape)
            out.append(-g if self.maximize else g)
        return out

    def _wd(self, i):
        return self.weight_decay if self.weight_decay_mask[i] else 0.0


class NumpyProdigy(_Base):

    def __init__(self, params, *, learning_rate=1.0, beta_1=0.9,
                 beta_2=0.999, beta_3=None, epsilon=1e-8, weight_decay=0.0,
                 decouple=True, use_bias_correction=False,
                 safeguard_warmup=False, d0=1e-6, d_coef=1.0,
                 growth_rate=float("inf"), maximize=False,
                 weight_decay_mask=None):
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)
        self.b1, self.b2 = float(beta_1), float(beta_2)
        self.b3 = math.sqrt(self.b2) if beta_3 is None else float(beta_3)
        self.eps, self.decouple = float(epsilon), decouple
        self.bias_correction, self.safeguard = use_bias_correction, \
            safeguard_warmup
        self.d0 = self.d = self.d_max = float(d0)
        self.d_coef, self.growth = float(d_coef), float(growth_rate)
        self.r = 0.0
        self.x0 = [None] * len(self.params)
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.s = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        lr, d, k = float(self.learning_rate), self.d, self.k
        gs = self._grads(grads)
        rho = (math.sqrt(1.0 - self.b2 ** (k + 1)) / (1.0 - self.b1 ** (k + 1))
               if self.bias_correction else 1.0)
        eta = d * lr * rho
        for i, p in enumerate(self.params):
            if self.x0[i] is None:
                self.x0[i] = p.copy()
            if not self.decouple:
                gs[i] = gs[i] + self._wd(i) * p
        if lr <= 0.0:  # no parameter group with a positive rate
            return [p.copy() for p in self.params]
        r = self.b3 * self.r
        total = 0.0
        for i, (p, g) in enumerate(zip(self.params, gs)):
            r += (d / self.d0) * eta * float(np.sum(g * (self.x0[i] - p)))
            self.m[i] = self.b1 * self.m[i] + d * (1.0 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + d * d * (1.0 - self.b2) * g * g
            coef = d if self.safeguard else eta
            self.s[i] = self.b3 * self.s[i] + (d / self.d0) * coef * g
            total += float(np.sum(np.abs(self.s[i])))
        if total == 0.0:
            return [p.copy() for p in self.params]
        d_hat = self.d_coef * r / total
        if d == self.d0:
            d = _maximum(d, d_hat)
        self.d_max = _maximum(self.d_max, d_hat)
        d = _minimum(self.d_max, d * self.growth)
        self.r, self.d, self.k = r, d, k + 1
        for i, (p, g) in enumerate(zip(self.params, gs)):
            denom = np.sqrt(self.v[i]) + d * self.eps
            if self.decouple:
                p = p - self._wd(i) * eta * p
            if self.b1 > 0.0:
                p = p - eta * self.m[i] / denom
            else:
                p = p - eta * d * g / denom
            self.params[i] = p
        return [p.copy() for p in self.params]


class NumpyDAdaptAdam(_Base):

    def __init__(self, params, *, learning_rate=1.0, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
                 decouple=False, use_bias_correction=False, d0=1e-6,
                 growth_rate=float("inf"), layer_scale=1.0, maximize=False,
                 weight_decay_mask=None):
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)
        self.b1, self.b2 = float(beta_1), float(beta_2)
        self.eps, self.decouple = float(epsilon), decouple
        self.bias_correction = use_bias_correction
        self.d, self.growth = float(d0), float(growth_rate)
        self.layer_scale = float(layer_scale)
        self.n = 0.0
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.s = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        lr, d, k, r = float(self.learning_rate), self.d, self.k, \
            self.layer_scale
        gs = self._grads(grads)
        rho = (math.sqrt(1.0 - self.b2 ** (k + 1)) / (1.0 - self.b1 ** (k + 1))
               if self.bias_correction else 1.0)
        eta = d * lr * rho
        bs = math.sqrt(self.b2)
        if not self.decouple:
            gs = [g + self._wd(i) * p
                  for i, (p, g) in enumerate(zip(self.params, gs))]
        if lr <= 0.0:
            return [p.copy() for p in self.params]
        acc, total = 0.0, 0.0
        for i, g in enumerate(gs):
            acc += r * eta * float(np.sum(
                g * self.s[i] / (np.sqrt(self.v[i]) + self.eps)))
            self.m[i] = self.b1 * self.m[i] + r * eta * (1.0 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1.0 - self.b2) * g * g
            self.s[i] = bs * self.s[i] + eta * (1.0 - bs) * g
            total += r * float(np.sum(np.abs(self.s[i])))
        n = bs * self.n + (1.0 - bs) * acc
        if total == 0.0:
            return [p.copy() for p in self.params]
        d_hat = n / ((1.0 - bs) * total)
        self.d = _maximum(d, _minimum(d_hat, d * self.growth))
        self.n, self.k = n, k + 1
        for i, p in enumerate(self.params):
            if self.decouple:
                p = p - self._wd(i) * eta * p
            self.params[i] = p - self.m[i] / (np.sqrt(self.v[i]) + self.eps)
        return [p.copy() for p in self.params]


class NumpyDAdaptSGD(_Base):

    def __init__(self, params, *, learning_rate=1.0, momentum=0.0,
                 weight_decay=0.0, d0=1e-6, growth_rate=float("inf"),
                 maximize=False, weight_decay_mask=None):
        super().__init__(params, learning_rate, weight_decay, maximize,
                         weight_decay_mask)
        self.momentum = float(momentum)
        self.d, self.growth = float(d0), float(growth_rate)
        self.n, self.g0 = 0.0, 0.0
        self.x0 = [p.copy() for p in self.params]
        self.s = [np.zeros_like(p) for p in self.params]

    def step(self, grads):
        lr, d = float(self.learning_rate), self.d
        gs = self._grads(grads)
        if lr <= 0.0:
            return [p.copy() for p in self.params]
        if self.k == 0:
            self.g0 = math.sqrt(sum(float(np.sum(g * g)) for g in gs))
        eta = d * lr / self.g0
        n, total = self.n, 0.0
        for i, (p, g) in enumerate(zip(self.params, gs)):
            g = g + self._wd(i) * p
            n += eta * float(np.sum(g * self.s[i]))
            self.s[i] = self.s[i] + eta * g
            total += float(np.sum(self.s[i] * self.s[i]))
        if total == 0.0:
            return [p.copy() for p in self.params]
        d_hat = 2.0 * n / math.sqrt(total)
        self.d = _maximum(d, _minimum(d_hat, d * self.growth))
        self.n, self.k = n, self.k + 1
        c = 1.0 - self.momentum
        for i, p in enumerate(self.params):
            self.params[i] = (1.0 - c) * p + c * (self.x0[i] - self.s[i])
        return [p.copy() for p in self.params]
