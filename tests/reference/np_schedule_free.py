"""NumPy float64 reference of schedule-free SGD, AdamW and RAdam, written
from the equations of Defazio et al. (2024), "The Road Less Scheduled", in
their x/z form (a test oracle; schedulefree 1.4.1 updates y in place, this
keeps x and z and derives y)::

    y_t     = (1 - beta) z_t + beta x_t          (the gradient's point)
    d_t     = g_t                                 (SGD)
            = g_t / (sqrt(v_t / (1 - beta_2^t)) + eps)   (AdamW; RAdam once
                                                  rho_t > 4, else g_t)
    d_t    += weight_decay * y_t
    z_{t+1} = z_t - lr_t d_t
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

with lr_t the learning rate times the warmup factor min(1, t/warmup) (or
RAdam's rectification r_t, 0 or 1 before it starts), lr_max the running
maximum of lr_t (from -1), w_t = t^r lr_max^p, c = w_t / sum(w) (0 while
the sum is 0). ``params`` are y (what the model holds while training);
``eval_params()`` are x.
"""

import math

import numpy as np


class _NumpyScheduleFree:
    adaptive = False

    def __init__(self, params, learning_rate, beta, weight_decay=0.0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0, beta_2=0.999,
                 epsilon=1e-8, maximize=False, weight_decay_mask=None):
        self.x = [np.array(p, np.float64) for p in params]
        self.z = [x.copy() for x in self.x]
        self.v = [np.zeros_like(x) for x in self.x]
        self.learning_rate = learning_rate
        self.beta = float(beta)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.weight_decay = float(weight_decay)
        self.warmup_steps = int(warmup_steps)
        self.r = float(r)
        self.p = float(weight_lr_power)
        self.maximize = bool(maximize)
        self.mask = weight_decay_mask or [True] * len(self.x)
        self.t = 0
        self.lr_max = -1.0
        self.weight_sum = 0.0

    @property
    def params(self):
        b = self.beta
        return [(1.0 - b) * z + b * x for x, z in zip(self.x, self.z)]

    def eval_params(self):
        return [x.copy() for x in self.x]

    def _lr(self, lr, t):
        """(lr_t, normalise?) of step t."""
        if self.warmup_steps and t <= self.warmup_steps:
            lr = lr * t / self.warmup_steps
        return lr, self.adaptive

    def step(self, grads):
        self.t += 1
        t = self.t
        lr, normalise = self._lr(float(self.learning_rate), t)
        self.lr_max = max(self.lr_max, lr)
        weight = t ** self.r * self.lr_max ** self.p
        self.weight_sum += weight
        c = weight / self.weight_sum if self.weight_sum else 0.0
        ys = self.params
        for i, (g, y) in enumerate(zip(grads, ys)):
            g = np.asarray(g, np.float64).reshape(y.shape)
            if self.maximize:
                g = -g
            if self.adaptive:
                self.v[i] = self.beta_2 * self.v[i] + (1 - self.beta_2) * g * g
                if normalise:
                    g = g / (np.sqrt(self.v[i] / (1 - self.beta_2 ** t))
                             + self.epsilon)
            if self.mask[i]:
                g = g + self.weight_decay * y
            self.z[i] = self.z[i] - lr * g
            self.x[i] = (1 - c) * self.x[i] + c * self.z[i]
        return self.params


class NumpyScheduleFreeSGD(_NumpyScheduleFree):
    def __init__(self, params, *, learning_rate=1.0, momentum=0.9,
                 weight_decay=0.0, warmup_steps=0, r=0.0,
                 weight_lr_power=2.0, maximize=False,
                 weight_decay_mask=None):
        super().__init__(params, learning_rate, momentum, weight_decay,
                         warmup_steps, r, weight_lr_power,
                         maximize=maximize,
                         weight_decay_mask=weight_decay_mask)


class NumpyScheduleFreeAdamW(_NumpyScheduleFree):
    adaptive = True

    def __init__(self, params, *, learning_rate=0.0025, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, weight_decay=0.0,
                 warmup_steps=0, r=0.0, weight_lr_power=2.0, maximize=False,
                 weight_decay_mask=None):
        super().__init__(params, learning_rate, beta_1, weight_decay,
                         warmup_steps, r, weight_lr_power, beta_2, epsilon,
                         maximize, weight_decay_mask)


class NumpyScheduleFreeRAdam(_NumpyScheduleFree):
    adaptive = True

    def __init__(self, params, *, learning_rate=0.0025, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, weight_decay=0.0, r=0.0,
                 weight_lr_power=2.0, silent_sgd_phase=True, maximize=False,
                 weight_decay_mask=None):
        self.silent = bool(silent_sgd_phase)
        super().__init__(params, learning_rate, beta_1, weight_decay, 0, r,
                         weight_lr_power, beta_2, epsilon, maximize,
                         weight_decay_mask)

    def _lr(self, lr, t):
        b2 = self.beta_2
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
        if rho_t > 4:
            rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                             / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            return lr * rect, True
        return lr * (0.0 if self.silent else 1.0), False
