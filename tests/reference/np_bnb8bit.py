"""NumPy reference of bitsandbytes 0.50.2's 8-bit AdamW, Lion and AdEMAMix
on CPU, in float32 (the algorithm is defined by its float32 rounding: a
state element's code can flip on the last bit of its value).

Written from bitsandbytes' CPU sources (``backends/cpu/ops.py`` and
``csrc/cpu_ops.cpp``), independently of the package's threshold search:

* quantise a tensor (torch row-major order) in 256-element blocks:
  ``absmax = max |x|``, ``v = x * (1 / absmax)``, bin
  ``floor(fl32((fl32(v + 1) * 0.5) * 65535 + 0.5))`` (one fused
  multiply-add), code = the bin's entry of a 65536-entry table (the number
  of midpoints of the dynamic map below ``-1 + 2 i / 65535``); all-zero
  blocks give code 0;
* dequantise: ``map[code] * absmax``;
* per step: dequantise, update in float32 with torch's fused
  ``add(alpha=)``/``addcmul``, decay ``p *= 1 - lr * wd`` first, quantise.

Tensors below ``min_8bit_size`` elements keep float32 state and follow the
32-bit CPU update. Parameters are in the torch layout (the generic tests'
arrays are their own torch layout).
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference...
    from tests.reference.numpy_optimizers import _NumpyOptimizer

F = np.float32


def _linspace(start, end, steps):
    # torch.linspace (float32 CPU): two halves, a fused multiply-add each
    start, end = F(start), F(end)
    step = np.float64(F((end - start) / F(steps - 1)))
    i = np.arange(steps)
    up = np.float64(start) + step * i
    down = np.float64(end) - step * (steps - 1 - i)
    return np.where(i < steps // 2, up, down).astype(F)


def dynamic_map(signed):
    out = []
    for k in range(7):
        n = (2 ** k if signed else 2 ** (k + 1)) + 1
        edges = _linspace(0.1, 1.0, n)
        mids = ((edges[1:] + edges[:-1]) / F(2)).astype(F)
        out += list((mids * F(10.0 ** (k - 6))).astype(F))
        if signed:
            out += list((mids * F(-(10.0 ** (k - 6)))).astype(F))
    out += [F(0), F(1)]
    out += [F(0)] * (256 - len(out))
    return np.sort(np.array(out, F))


def _bin_codes(table):
    mids = (F(0.5) * (table[1:] + table[:-1])).astype(F)
    lefts = (F(-1) + (F(2) * np.arange(65536).astype(F)) / F(65535)).astype(F)
    return np.minimum(np.searchsorted(mids, lefts, side="left"), 255)


_MAPS = {s: dynamic_map(s) for s in (True, False)}
_BINS = {s: _bin_codes(_MAPS[s]) for s in (True, False)}


def quantize(x, signed):
    flat = np.asarray(x, F).ravel()
    n = flat.size
    blocks = -(-n // 256)
    padded = np.zeros(blocks * 256, F)
    padded[:n] = flat
    padded = padded.reshape(blocks, 256)
    absmax = np.abs(padded).max(axis=1).astype(F)
    codes = np.zeros(padded.shape, np.uint8)
    for b in range(blocks):
        if absmax[b] == 0:
            continue
        v = np.clip((padded[b] * (F(1) / absmax[b])).astype(F), -1, 1)
        unit = ((v + F(1)).astype(F) * F(0.5)).astype(F)
        fused = (unit.astype(np.float64) * 65535.0 + 0.5).astype(F)
        codes[b] = _BINS[signed][np.floor(fused).astype(np.int64)]
    return codes.ravel()[:n], absmax


def dequantize(codes, absmax, shape, signed):
    n = codes.size
    values = _MAPS[signed][codes.astype(np.int64)]
    padded = np.zeros(absmax.size * 256, F)
    padded[:n] = values
    out = (padded.reshape(-1, 256) * absmax[:, None]).astype(F)
    return out.ravel()[:n].reshape(shape)


def fma(x, y, z):
    return (np.asarray(x, np.float64) * np.float64(y) + z).astype(F)


class _Numpy8bit(_NumpyOptimizer):
    moments = ()

    def __init__(self, params, learning_rate, weight_decay, min_8bit_size,
                 maximize, weight_decay_mask):
        self.min_8bit_size = int(min_8bit_size)
        super().__init__(params, learning_rate, 0.0, maximize,
                         weight_decay_mask)
        self.wd = float(weight_decay)
        self.params = [p.astype(F) for p in self.params]

    def _new_state(self, param):
        if param.size < self.min_8bit_size:
            return {name: np.zeros(param.shape, F)
                    for name, _ in self.moments}
        return {name: quantize(np.zeros(param.shape, F), signed)
                for name, signed in self.moments}

    def step(self, grads):
        self.iterations += 1
        t = self.iterations
        lr = float(self.learning_rate)
        for i, (param, grad) in enumerate(zip(self.params, grads)):
            g = np.asarray(grad, F).reshape(param.shape)
            if self.maximize:
                g = -g
            state = self.states[i]
            quantised = param.size >= self.min_8bit_size
            moments = {}
            for name, signed in self.moments:
                moments[name] = (dequantize(*state[name], param.shape, signed)
                                 if quantised else state[name])
            p = param.astype(F)
            if self.weight_decay_mask[i] and self.wd > 0:
                p = (p * F(1.0 - lr * self.wd)).astype(F)
            p, moments = self._math(p, g, moments, lr, t, quantised)
            for name, signed in self.moments:
                state[name] = (quantize(moments[name], signed) if quantised
                               else moments[name])
            self.params[i] = np.asarray(p, F)
        return [p.copy() for p in self.params]


class NumpyAdamW8bit(_Numpy8bit):
    moments = (("m", True), ("v", False))

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, weight_decay=1e-2,
                 min_8bit_size=4096, maximize=False, weight_decay_mask=None):
        self.b1, self.b2, self.eps = beta_1, beta_2, epsilon
        super().__init__(params, learning_rate, weight_decay, min_8bit_size,
                         maximize, weight_decay_mask)

    def _math(self, p, g, mom, lr, t, quantised):
        b1, b2 = self.b1, self.b2
        m = fma(g, F(1 - b1), (mom["m"] * F(b1)).astype(F))
        v = fma((F(1 - b2) * g).astype(F), g, (mom["v"] * F(b2)).astype(F))
        c1 = 1 - b1 ** t
        c2 = math.sqrt(1 - b2 ** t)
        if quantised:
            denom = ((np.sqrt(v) / F(c2)).astype(F) + F(self.eps)).astype(F)
            p = (p + ((F(-lr / c1) * m).astype(F) / denom).astype(F)).astype(F)
        else:
            update = (m / (np.sqrt(v) + F(self.eps * c2)).astype(F)).astype(F)
            p = fma(update, F(-lr * c2 / c1), p)
        return p, {"m": m, "v": v}


class NumpyLion8bit(_Numpy8bit):
    moments = (("m", True),)

    def __init__(self, params, *, learning_rate=1e-4, beta_1=0.9,
                 beta_2=0.99, weight_decay=0.0, min_8bit_size=4096,
                 maximize=False, weight_decay_mask=None):
        self.b1, self.b2 = beta_1, beta_2
        super().__init__(params, learning_rate, weight_decay, min_8bit_size,
                         maximize, weight_decay_mask)

    def _math(self, p, g, mom, lr, t, quantised):
        b1, b2 = self.b1, self.b2
        m = mom["m"]
        if quantised:
            u = np.sign(((m * F(b1)).astype(F) + (g * F(1 - b1)).astype(F))
                        .astype(F))
        else:
            u = np.sign(fma(g, F(1 - b1), (m * F(b1)).astype(F)))
        p = (p - F(lr) * u).astype(F)
        m = fma(g, F(1 - b2), (m * F(b2)).astype(F))
        return p, {"m": m}


class NumpyAdEMAMix8bit(_Numpy8bit):
    moments = (("m1", True), ("m2", True), ("nu", False))

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.999, beta_3=0.9999, alpha=5.0, t_alpha=None,
                 t_beta3=None, epsilon=1e-8, weight_decay=1e-2,
                 min_8bit_size=4096, maximize=False, weight_decay_mask=None):
        self.b1, self.b2, self.b3, self.alpha = beta_1, beta_2, beta_3, alpha
        self.t_alpha, self.t_beta3, self.eps = t_alpha, t_beta3, epsilon
        super().__init__(params, learning_rate, weight_decay, min_8bit_size,
                         maximize, weight_decay_mask)

    def _math(self, p, g, mom, lr, t, quantised):
        b1, b2, b3, alpha = self.b1, self.b2, self.b3, self.alpha
        if self.t_alpha:
            alpha = min(t * alpha / self.t_alpha, alpha)
        if self.t_beta3:
            s = t / self.t_beta3
            l1, l3 = math.log(b1), math.log(b3)
            b3 = min(math.exp(l1 * l3 / ((1 - s) * l3 + s * l1)), b3)
        m1 = fma(g, F(1 - b1), (mom["m1"] * F(b1)).astype(F))
        m2 = fma(g, F(1 - b3), (mom["m2"] * F(b3)).astype(F))
        nu = fma((F(1 - b2) * g).astype(F), g, (mom["nu"] * F(b2)).astype(F))
        c1, c2 = 1 - b1 ** t, math.sqrt(1 - b2 ** t)
        mixed = ((m1 / F(c1)).astype(F) + (F(alpha) * m2).astype(F)).astype(F)
        denom = ((np.sqrt(nu) / F(c2)).astype(F) + F(self.eps)).astype(F)
        p = fma((mixed / denom).astype(F), F(-lr), p)
        return p, {"m1": m1, "m2": m2, "nu": nu}
