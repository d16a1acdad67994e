"""NumPy float64 reference implementations of torch.optim 2.13's optimizers (a test oracle).

Each class is written from the update equations in its docstring and follows torch's single-tensor
code path in meaning: the gradient is negated first when ``maximize``; coupled weight decay (L2)
then adds ``wd * theta`` to it, decoupled weight decay instead scales ``theta`` by ``1 - lr * wd``
before the update. ``t`` is the 1-based number of ``step()`` calls so far, including this one.

Common interface::

    opt = NumpyAdam([w, b], learning_rate=1e-3, weight_decay_mask=[True, False])
    new_params = opt.step([gw, gb])      # list of float64 copies of the updated params
    opt.learning_rate = 1e-4             # plain attribute, used from the next step on

``weight_decay_mask[i] = False`` exempts param ``i`` from weight decay in either mode.
``momentum`` (SGD, RMSprop) and ``beta_1`` (Adam, AdamW, NAdam) may also be a callable mapping the
0-based index of the step being taken (``t - 1``) to a float; it is evaluated on every step, and the
step simply uses the current value (as torch does when a scheduler edits a param group between steps).
"""

import math

import numpy as np

__all__ = [
    "NumpySGD",
    "NumpyAdagrad",
    "NumpyRMSprop",
    "NumpyAdadelta",
    "NumpyAdam",
    "NumpyAdamW",
    "NumpyNAdam",
    "REFERENCES",
]


def _current(value, step_index):
    """A hyperparameter that is either a number or a callable of the 0-based step index."""
    return float(value(step_index)) if callable(value) else float(value)


class _NumpyOptimizer:
    """Shared bookkeeping: float64 copies, step counter, maximize and both weight-decay modes.

    Subclasses define ``_new_state(param)`` (a dict of per-param slots) and
    ``_update(param, grad, state, lr, t)`` returning the new param; ``_begin_step(t)`` may
    evaluate per-step scalars once for all params.
    """

    decoupled = False  # whether weight decay is decoupled; set per instance where configurable

    def __init__(self, params, learning_rate, weight_decay, maximize, weight_decay_mask):
        self.params = [np.array(p, dtype=np.float64, copy=True) for p in params]
        self.learning_rate = learning_rate
        self.weight_decay = float(weight_decay)
        self.maximize = bool(maximize)
        if weight_decay_mask is None:
            weight_decay_mask = [True] * len(self.params)
        if len(weight_decay_mask) != len(self.params):
            raise ValueError("weight_decay_mask needs one entry per param")
        self.weight_decay_mask = [bool(m) for m in weight_decay_mask]
        self.iterations = 0
        self.states = [self._new_state(p) for p in self.params]

    def _new_state(self, param):
        return {}

    def _begin_step(self, t):
        pass

    def step(self, grads):
        if len(grads) != len(self.params):
            raise ValueError("step() needs one gradient per param")
        self.iterations += 1
        t = self.iterations
        lr = float(self.learning_rate)
        self._begin_step(t)
        for i, (param, grad) in enumerate(zip(self.params, grads)):
            g = np.array(grad, dtype=np.float64, copy=True).reshape(param.shape)
            if self.maximize:
                g = -g
            wd = self.weight_decay if self.weight_decay_mask[i] else 0.0
            if wd != 0.0:
                if self.decoupled:
                    param = param * (1.0 - lr * wd)
                else:
                    g = g + wd * param
            # np.asarray keeps 0-d params as arrays (0-d arithmetic yields NumPy scalars)
            self.params[i] = np.asarray(self._update(param, g, self.states[i], lr, t), np.float64)
        return [p.copy() for p in self.params]


class NumpySGD(_NumpyOptimizer):
    """SGD with optional (Nesterov) momentum and dampening, torch semantics.

    With momentum mu and dampening tau, when mu != 0::

        b = g                              on the first step that uses momentum (no dampening)
        b = mu * b + (1 - tau) * g         afterwards
        g = g + mu * b  if nesterov  else  b
    then ``theta = theta - lr * g``. The learning rate stays outside the buffer.
    """

    def __init__(self, params, *, learning_rate=1e-3, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, maximize=False, weight_decay_mask=None):
        if nesterov and not callable(momentum) and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a positive momentum and zero dampening")
        self.momentum = momentum
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"buf": None}

    def _begin_step(self, t):
        self._mu = _current(self.momentum, t - 1)

    def _update(self, param, g, state, lr, t):
        mu = self._mu
        if mu != 0.0:
            if state["buf"] is None:
                state["buf"] = g.copy()
            else:
                state["buf"] = mu * state["buf"] + (1.0 - self.dampening) * g
            g = g + mu * state["buf"] if self.nesterov else state["buf"]
        return param - lr * g


class NumpyAdagrad(_NumpyOptimizer):
    """Adagrad, torch semantics (epsilon outside the root, learning-rate decay by step)::

        clr = lr / (1 + (t - 1) * lr_decay)
        S = S + g**2                       (S starts at initial_accumulator_value)
        theta = theta - clr * g / (sqrt(S) + epsilon)
    """

    def __init__(self, params, *, learning_rate=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, epsilon=1e-10, maximize=False,
                 weight_decay_mask=None):
        self.lr_decay = float(lr_decay)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"sum": np.full_like(param, self.initial_accumulator_value)}

    def _update(self, param, g, state, lr, t):
        clr = lr / (1.0 + (t - 1) * self.lr_decay)
        state["sum"] = state["sum"] + g * g
        return param - clr * g / (np.sqrt(state["sum"]) + self.epsilon)


class NumpyRMSprop(_NumpyOptimizer):
    """RMSprop, torch semantics (rho is torch's alpha; epsilon outside the root)::

        v = rho * v + (1 - rho) * g**2
        centered:  gbar = rho * gbar + (1 - rho) * g;  a = sqrt(v - gbar**2) + epsilon
        otherwise: a = sqrt(v) + epsilon
        momentum > 0:  b = momentum * b + g / a;  theta = theta - lr * b
        otherwise:     theta = theta - lr * g / a
    All buffers start at zero; the learning rate stays outside the momentum buffer.
    """

    def __init__(self, params, *, learning_rate=1e-2, rho=0.99, epsilon=1e-8, weight_decay=0.0,
                 momentum=0.0, centered=False, maximize=False, weight_decay_mask=None):
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        self.momentum = momentum
        self.centered = bool(centered)
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        zeros = np.zeros_like(param)
        return {"v": zeros, "gbar": zeros, "buf": zeros}

    def _begin_step(self, t):
        self._mu = _current(self.momentum, t - 1)

    def _update(self, param, g, state, lr, t):
        rho = self.rho
        state["v"] = rho * state["v"] + (1.0 - rho) * g * g
        if self.centered:
            state["gbar"] = rho * state["gbar"] + (1.0 - rho) * g
            a = np.sqrt(state["v"] - state["gbar"] ** 2) + self.epsilon
        else:
            a = np.sqrt(state["v"]) + self.epsilon
        if self._mu > 0.0:
            state["buf"] = self._mu * state["buf"] + g / a
            return param - lr * state["buf"]
        return param - lr * g / a


class NumpyAdadelta(_NumpyOptimizer):
    """Adadelta, torch semantics (default learning rate 1.0 multiplies the step)::

        v = rho * v + (1 - rho) * g**2
        delta = sqrt(u + epsilon) / sqrt(v + epsilon) * g
        u = rho * u + (1 - rho) * delta**2        (u accumulates delta without lr)
        theta = theta - lr * delta
    """

    def __init__(self, params, *, learning_rate=1.0, rho=0.9, epsilon=1e-6, weight_decay=0.0,
                 maximize=False, weight_decay_mask=None):
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"v": np.zeros_like(param), "u": np.zeros_like(param)}

    def _update(self, param, g, state, lr, t):
        rho, eps = self.rho, self.epsilon
        state["v"] = rho * state["v"] + (1.0 - rho) * g * g
        delta = np.sqrt(state["u"] + eps) / np.sqrt(state["v"] + eps) * g
        state["u"] = rho * state["u"] + (1.0 - rho) * delta * delta
        return param - lr * delta


class NumpyAdam(_NumpyOptimizer):
    """Adam / AMSGrad, torch semantics (epsilon added to the bias-corrected root)::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        bc1 = 1 - beta_1**t,  bc2 = 1 - beta_2**t     (beta_1 = its current value)
        amsgrad:   vmax = max(vmax, v);  d = sqrt(vmax) / sqrt(bc2) + epsilon
        otherwise: d = sqrt(v) / sqrt(bc2) + epsilon
        theta = theta - (lr / bc1) * m / d
    Weight decay is L2 unless ``decoupled_weight_decay`` (then theta *= 1 - lr * wd first).
    """

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, amsgrad=False, decoupled_weight_decay=False, maximize=False,
                 weight_decay_mask=None):
        self.beta_1 = beta_1
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)
        self.decoupled = bool(decoupled_weight_decay)
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        zeros = np.zeros_like(param)
        return {"m": zeros, "v": zeros, "vmax": zeros}

    def _begin_step(self, t):
        self._b1 = _current(self.beta_1, t - 1)

    def _update(self, param, g, state, lr, t):
        b1, b2 = self._b1, self.beta_2
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        state["v"] = b2 * state["v"] + (1.0 - b2) * g * g
        bc1 = 1.0 - b1**t
        bc2 = 1.0 - b2**t
        if self.amsgrad:
            state["vmax"] = np.maximum(state["vmax"], state["v"])
            second = state["vmax"]
        else:
            second = state["v"]
        d = np.sqrt(second) / math.sqrt(bc2) + self.epsilon
        return param - (lr / bc1) * state["m"] / d


class NumpyAdamW(NumpyAdam):
    """AdamW: exactly NumpyAdam with decoupled weight decay (default 1e-2)::

        theta = theta * (1 - lr * weight_decay), then the Adam / AMSGrad update above.
    """

    def __init__(self, params, *, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=1e-2, amsgrad=False, maximize=False, weight_decay_mask=None):
        super().__init__(params, learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, weight_decay=weight_decay, amsgrad=amsgrad,
                         decoupled_weight_decay=True, maximize=maximize,
                         weight_decay_mask=weight_decay_mask)


class NumpyNAdam(_NumpyOptimizer):
    """NAdam with torch's momentum-decay schedule (psi = momentum_decay)::

        mu_t     = beta_1 * (1 - 0.5 * 0.96**(t * psi))
        mu_next  = beta_1 * (1 - 0.5 * 0.96**((t + 1) * psi))    (both with the current beta_1)
        P_t      = P_{t-1} * mu_t,  P_0 = 1
        m = beta_1 * m + (1 - beta_1) * g;  v = beta_2 * v + (1 - beta_2) * g**2
        d = sqrt(v / (1 - beta_2**t)) + epsilon
        theta = theta - lr * (1 - mu_t) / (1 - P_t) * g / d
                      - lr * mu_next / (1 - P_t * mu_next) * m / d
    Weight decay is L2 unless ``decoupled_weight_decay`` (then theta *= 1 - lr * wd first).
    """

    def __init__(self, params, *, learning_rate=2e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, momentum_decay=4e-3, decoupled_weight_decay=False,
                 maximize=False, weight_decay_mask=None):
        self.beta_1 = beta_1
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.momentum_decay = float(momentum_decay)
        self.decoupled = bool(decoupled_weight_decay)
        self.mu_product = 1.0  # identical for every param, so kept once
        super().__init__(params, learning_rate, weight_decay, maximize, weight_decay_mask)

    def _new_state(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def _begin_step(self, t):
        b1, psi = _current(self.beta_1, t - 1), self.momentum_decay
        self._b1 = b1
        self._mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        self._mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        self.mu_product *= self._mu

    def _update(self, param, g, state, lr, t):
        b1, b2 = self._b1, self.beta_2
        mu, mu_next, prod = self._mu, self._mu_next, self.mu_product
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        state["v"] = b2 * state["v"] + (1.0 - b2) * g * g
        d = np.sqrt(state["v"] / (1.0 - b2**t)) + self.epsilon
        param = param - lr * (1.0 - mu) / (1.0 - prod) * g / d
        return param - lr * mu_next / (1.0 - prod * mu_next) * state["m"] / d


REFERENCES = {
    "sgd": NumpySGD,
    "adagrad": NumpyAdagrad,
    "rmsprop": NumpyRMSprop,
    "adadelta": NumpyAdadelta,
    "adam": NumpyAdam,
    "adamw": NumpyAdamW,
    "nadam": NumpyNAdam,
}
