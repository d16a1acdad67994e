"""NumPy float64 reference of Kron (timm 1.0.31's PSGD Kron), written from
the algorithm (Li's PSGD with Kronecker factors) and timm's step order::

    n = steps taken before;  c += 1;  update = c >= 1/p  (p: the given
        probability or clip(exp(-0.001 (n - 500)), 0.03, 1));  then c = 0
    m = beta m + (1 - beta) g;   mh = m / (1 - beta^(n+1))
    if update:
        balance the factors when ndim > 1 and the coin < 0.01
        A = Q mh (each factor on its axis);  B = V with each axis times
            Q_i^{-1} from the right
        Q_i -= precond_lr * triu(A_(i) A_(i)^T - B_(i) B_(i)^T)
               / (lb(A_(i) A_(i)^T + B_(i) B_(i)^T) + tiny) @ Q_i
               (diagonal factor: elementwise, max |.| as the norm)
    u = Q^T Q mh;  u *= min(1, 1.1 / (rms(u) + 1e-8))
    theta -= lr (u + wd theta)   or   theta = theta (1 - lr wd) - lr u

The draws (probe V and the balancing coin) are those of
keras-optzoo's documented counter-based hash (:func:`draws`), so that the
reference, timm fed the same draws, and the optimizer follow one
trajectory. The harness's parameters are plain arrays (the layout rule
reads them as stored).
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_kron
    from tests.reference.numpy_optimizers import _NumpyOptimizer

_M32 = 0xFFFFFFFF
_TINY = 1.1754943508222875e-38


# --------------------------------------------------------------- the draws
def _mix(x):
    """Wellons' lowbias32 on uint64 arrays holding 32-bit values."""
    x = np.asarray(x, np.uint64) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & _M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & _M32
    x ^= x >> np.uint64(16)
    return x


def uniforms(seed, count, offset=0):
    s0, s1 = (int(v) & _M32 for v in seed)
    key = _mix(_mix(s0) ^ np.uint64(s1))
    counter = np.arange(offset, offset + count, dtype=np.uint64)
    h = _mix(_mix(counter) ^ key)
    return ((h >> np.uint64(8)).astype(np.float64) + 0.5) / 2.0 ** 24


def normals(seed, shape):
    n = max(1, math.prod(shape))
    u = uniforms(seed, 2 * n).reshape(n, 2).astype(np.float32)
    z = np.sqrt(np.float32(-2.0) * np.log(u[:, 0])) * np.cos(
        np.float32(2.0 * math.pi) * u[:, 1])
    return z[:math.prod(shape)].reshape(shape).astype(np.float32)


def draws(seed, counter, shape):
    """(probe in ``shape``, balancing coin) of the ``counter``-th draw."""
    pair = (seed, counter)
    n = max(1, math.prod(shape))
    return normals(pair, shape), float(uniforms(pair, 1, offset=2 * n)[0])


# ----------------------------------------------------------------- the math
def diagonal_flags(shape, max_size, min_ndim, mode):
    nd = len(shape)
    flags = [mode == "all_diag"] * nd
    if mode in ("one_diag", "smart_one_diag"):
        order = sorted(range(nd), key=lambda i: (shape[i], i))
        big = order[-1]
        srt = sorted(shape)
        if mode == "one_diag" or (nd >= 2 and srt[-1] > srt[-2]):
            flags[big] = True
    return [d == 1 or d > max_size or nd < min_ndim or f
            for d, f in zip(shape, flags)]


def _unfold(x, axis):
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _mode_apply(x, m, axis):
    """``m`` (d, d) applied to axis ``axis`` of ``x``: m @ x_(axis)."""
    return np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)


def _lower_bound(a):
    mx = np.max(np.abs(a))
    if mx == 0:
        return 0.0
    an = a / mx
    aa = an * an
    c, r = aa.sum(axis=0), aa.sum(axis=1)
    if c.max() > r.max():
        x = an[:, int(np.argmax(c))] @ an
        return mx * np.linalg.norm((x / np.linalg.norm(x)) @ an.T)
    x = an @ an[int(np.argmax(r))]
    return mx * np.linalg.norm(an.T @ (x / np.linalg.norm(x)))


class NumpyKron(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=0.001, momentum=0.9,
                 weight_decay=0.0, preconditioner_update_probability=None,
                 max_size_triangular=2048, min_ndim_triangular=2,
                 memory_save_mode=None, momentum_into_precond_update=True,
                 precond_lr=0.1, precond_init_scale=1.0, mu_dtype=None,
                 precond_dtype=None, decoupled_decay=False,
                 corrected_weight_decay=False, flatten=False,
                 flatten_start_dim=2, flatten_end_dim=-1,
                 stochastic_weight_decay=False, seed=0, maximize=False,
                 weight_decay_mask=None):
        self.beta = float(momentum)
        self.prob = preconditioner_update_probability
        self.max_size, self.min_ndim = max_size_triangular, min_ndim_triangular
        self.mode = memory_save_mode
        self.into = momentum_into_precond_update
        self.plr, self.scale0 = float(precond_lr), float(precond_init_scale)
        self.decoupled_decay = decoupled_decay
        self.max_lr = float(learning_rate) if corrected_weight_decay \
            else None
        self.flatten = (flatten_start_dim, flatten_end_dim) if flatten \
            else None
        self.seed = int(seed)
        self.draw_counter = 0
        self.wd = float(weight_decay)
        super().__init__(params, learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _work_shape(self, shape):
        if self.flatten is None:
            return tuple(shape)
        start, end = self.flatten
        nd = len(shape)
        end = min(end if end >= 0 else nd + end, nd - 1)
        if nd <= start or start > end:
            return tuple(shape)
        return (tuple(shape[:start]) + (math.prod(shape[start:end + 1]),)
                + tuple(shape[end + 1:]))

    def _new_state(self, param):
        shape = self._work_shape(param.shape)
        nd = len(shape)
        if nd == 0:
            flags, q = [True], [np.array(self.scale0)]
        else:
            s = self.scale0 ** (1.0 / nd)
            flags = diagonal_flags(shape, self.max_size, self.min_ndim,
                                   self.mode)
            q = [s * np.ones(d) if f else s * np.eye(d)
                 for d, f in zip(shape, flags)]
        return {"shape": shape, "diag": flags, "Q": q, "c": 0,
                "m": np.zeros(param.shape)}

    def _update(self, param, g, state, lr, t):
        n = t - 1
        v, coin = draws(self.seed, self.draw_counter, param.shape)
        self.draw_counter += 1
        if self.prob is None:
            p = float(np.clip(np.exp(np.float32(-0.001) * np.float32(n - 500)),
                              0.03, 1.0))
        else:
            p = self.prob
        state["c"] += 1
        update = state["c"] >= 1.0 / p
        if update:
            state["c"] = 0
        state["m"] = self.beta * state["m"] + (1 - self.beta) * g
        mh = state["m"] / (1 - self.beta ** t)
        shape = state["shape"]
        w = mh.reshape(shape)
        qs = state["Q"]
        if update:
            if len(shape) > 1 and coin < 0.01:
                norms = [np.max(np.abs(q)) for q in qs]
                gm = np.prod(norms) ** (1.0 / len(qs))
                qs = [q * (gm / nq) for q, nq in zip(qs, norms)]
            fit = w if self.into else g.reshape(shape)
            v = v.astype(np.float64).reshape(shape)
            if len(shape) == 0:
                a, b = qs[0] * fit, v / qs[0]
                t1, t2 = a * a, b * b
                tmp = self.plr * (t1 - t2) * qs[0] / (abs(t1 + t2) + _TINY)
                qs = [qs[0] - tmp]
            else:
                a, b = fit, v
                for i, (q, f) in enumerate(zip(qs, state["diag"])):
                    if f:
                        sh = [1] * len(shape)
                        sh[i] = -1
                        a = a * q.reshape(sh)
                        b = b / q.reshape(sh)
                    else:
                        a = _mode_apply(a, q, i)
                        b = _mode_apply(b, np.linalg.inv(q).T, i)
                new = []
                for i, (q, f) in enumerate(zip(qs, state["diag"])):
                    ua, ub = _unfold(a, i), _unfold(b, i)
                    if f:
                        t1, t2 = (ua * ua).sum(1), (ub * ub).sum(1)
                        tmp = self.plr * (t1 - t2) * q / (
                            np.max(np.abs(t1 + t2)) + _TINY)
                        new.append(q - tmp)
                    else:
                        t1, t2 = ua @ ua.T, ub @ ub.T
                        tmp = np.triu(self.plr * (t1 - t2)) / (
                            _lower_bound(t1 + t2) + _TINY)
                        new.append(q - tmp @ q)
                qs = new
            state["Q"] = qs
        if len(shape) == 0:
            u = qs[0] * qs[0] * w
        else:
            u = w
            for i, (q, f) in enumerate(zip(qs, state["diag"])):
                if f:
                    sh = [1] * len(shape)
                    sh[i] = -1
                    u = u * (q * q).reshape(sh)
                else:
                    u = _mode_apply(u, q.T @ q, i)
        u = u.reshape(param.shape)
        u = u * min(1.0, 1.1 / (np.sqrt(np.mean(u * u)) + 1e-8))
        if state["decay"] and self.wd:
            if self.decoupled_decay:
                scale = lr * lr / self.max_lr if self.max_lr else lr
                param = param * (1 - scale * self.wd)
            else:
                u = u + self.wd * param
        return param - lr * u


def slot_names(kwargs, shape):
    """keras-optzoo's saved slots of one parameter: timm's state names
    (momentum_buffer, update_counter, one factor Q_i per axis: (d, d)
    triangular or (d,) diagonal; one () factor for a scalar)."""
    opt = NumpyKron([np.zeros(shape)], **kwargs)
    state = opt.states[0]
    out = [("momentum_buffer", False), ("update_counter", True)]
    if not state["shape"]:
        return out + [("Q_0", ())]
    return out + [(f"Q_{i}", (d,) if f else (d, d)) for i, (d, f) in
                  enumerate(zip(state["shape"], state["diag"]))]
