"""NumPy float64 reference of SOAP (pytorch-optimizer 4.1.0), written from
the algorithm (Vyas et al., 2024) and the reference's step order::

    step 1:  L_i = (1 - bs) G_(i) G_(i)^T;  Q_i = eigenvectors of L_i,
             descending eigenvalues;  theta, m, v unchanged
    step t >= 2, s = t - 1:
        m += (1 - b1)(g - m);   v += (1 - b2)(P(g)^2 - v)
        u = P^-1(P(m) / (sqrt(v) + eps));  u /= rms(u) + eps  (normalize)
        theta = (theta - lr sqrt(1 - b2^s) / (1 - b1^s) u)(1 - lr wd)
        L_i += (1 - bs)(G_(i) G_(i)^T - L_i)
        every s % k == 0: order = argsort(-diag(Q_i^T L_i Q_i));
            v = v[.., order, ..] (axis i);  Q_i = qr((L_i Q_i)[:, order]).Q

P(X) multiplies axis i by Q_i^T (axes without a basis: identity). The
harness's parameters are plain arrays (the layout rule reads them as
stored). merge_dims merges adjacent axes with a running product <=
max_precondition_dim (vectors are not merged; scalars get no basis).
"""

import math

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_soap
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def _merge(shape, max_dim):
    merged, product = [], 1
    for d in shape:
        product *= d
        if product > max_dim:
            merged.append(product // d)
            product = d
    merged.append(product)
    return tuple(merged)


def _gram(x, axis):
    u = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return u @ u.T


def _project(x, bases, back=False):
    for i, q in enumerate(bases):
        if q is not None:
            x = np.moveaxis(np.tensordot(q if back else q.T, x,
                                         axes=([1], [i])), 0, i)
    return x


class NumpySOAP(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=3e-3, beta_1=0.95,
                 beta_2=0.95, shampoo_beta=None, epsilon=1e-8,
                 weight_decay=1e-2, precondition_frequency=10,
                 max_precondition_dim=10000, merge_dims=False,
                 precondition_1d=False, correct_bias=True,
                 normalize_gradient=False, data_format="channels_first",
                 maximize=False, weight_decay_mask=None):
        self.b1, self.b2 = float(beta_1), float(beta_2)
        self.bs = self.b2 if shampoo_beta is None else float(shampoo_beta)
        self.eps = float(epsilon)
        self.k = int(precondition_frequency)
        self.max_dim = int(max_precondition_dim)
        self.merge = bool(merge_dims)
        self.pre_1d = bool(precondition_1d)
        self.correct_bias = bool(correct_bias)
        self.normalize = bool(normalize_gradient)
        self.channels_last = data_format == "channels_last"
        # the decay follows the update (applied in _update)
        self.wd = float(weight_decay)
        super().__init__(params, learning_rate, 0.0, maximize, None)
        mask = weight_decay_mask or [True] * len(self.params)
        for state, keep in zip(self.states, mask):
            state["decay"] = bool(keep)

    def _to_space(self, x, state):
        if state["permute"]:
            x = np.transpose(x, (0, 3, 1, 2))
        return x.reshape(state["shape"])

    def _from_space(self, y, state, shape):
        if state["permute"]:
            y = y.reshape(shape[0], shape[3], shape[1], shape[2])
            return np.transpose(y, (0, 2, 3, 1))
        return y.reshape(shape)

    def _new_state(self, param):
        nd = param.ndim
        permute = self.merge and self.channels_last and nd == 4
        shape = param.shape
        if permute:
            shape = (shape[0], shape[3], shape[1], shape[2])
        if self.merge and nd >= 2:
            shape = _merge(shape, self.max_dim)
        if nd == 1:
            on = [self.pre_1d and shape[0] <= self.max_dim]
        else:
            on = [d <= self.max_dim for d in shape]
        return {"permute": permute, "shape": shape, "m": np.zeros(param.shape),
                "v": np.zeros(shape),
                "L": [np.zeros((d, d)) if f else None
                      for d, f in zip(shape, on)],
                "Q": [None] * len(shape)}

    def _update(self, param, g, state, lr, t):
        x = self._to_space(g, state)
        if t >= 2:
            s = t - 1
            size = lr
            if self.correct_bias:
                size = lr * math.sqrt(1 - self.b2 ** s) / (1 - self.b1 ** s)
            state["m"] += (1 - self.b1) * (g - state["m"])
            p = _project(x, state["Q"])
            state["v"] += (1 - self.b2) * (p * p - state["v"])
            m = _project(self._to_space(state["m"], state), state["Q"])
            u = _project(m / (np.sqrt(state["v"]) + self.eps), state["Q"],
                         back=True)
            u = self._from_space(u, state, param.shape)
            if self.normalize:
                u = u / (math.sqrt(float(np.mean(u * u))) + self.eps)
            param = param - size * u
            if state["decay"]:
                param = param * (1 - lr * self.wd)
        for i, L in enumerate(state["L"]):
            if L is not None:
                L += (1 - self.bs) * (_gram(x, i) - L)
        if t == 1:
            for i, L in enumerate(state["L"]):
                if L is not None:
                    _, vectors = np.linalg.eigh(L)
                    state["Q"][i] = vectors[:, ::-1]
        elif (t - 1) % self.k == 0:
            for i, (L, q) in enumerate(zip(state["L"], state["Q"])):
                if L is not None:
                    product = L @ q
                    order = np.argsort(-np.sum(q * product, axis=0),
                                       kind="stable")
                    state["v"] = np.take(state["v"], order, axis=i)
                    state["Q"][i] = np.linalg.qr(product[:, order])[0]
        return param


def slot_names(kwargs, shape):
    """keras-optzoo's saved slots of one parameter (names after the
    reference's state: exp_avg, exp_avg_sq in the statistics' space, one
    GG and Q per preconditioned axis)."""
    opt = NumpySOAP([np.zeros(shape)], **kwargs)
    state = opt.states[0]
    axes = [i for i, L in enumerate(state["L"]) if L is not None]
    d = state["shape"]
    return ([("exp_avg", False), ("exp_avg_sq", tuple(d))]
            + [(f"GG_{i}", (d[i], d[i])) for i in axes]
            + [(f"Q_{i}", (d[i], d[i])) for i in axes])
