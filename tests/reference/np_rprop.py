"""NumPy float64 reference of torch.optim.Rprop (torch 2.13), written from
its update equations (a test oracle). Per element: step_size = lr (the
learning rate of the first step; later changes are ignored), prev = 0; then::

    s = sign(g * prev)                  (torch's sign: sign(NaN) = 0)
    step_size = clip(step_size * (etaplus if s > 0 else etaminus if s < 0
                                  else 1), min, max)
    g = 0 where s < 0
    theta = theta - sign(g) * step_size
    prev = g

No weight decay.
"""

import numpy as np

try:
    from reference.numpy_optimizers import _NumpyOptimizer
except ImportError:  # imported as tests.reference.np_rprop
    from tests.reference.numpy_optimizers import _NumpyOptimizer


def _torch_sign(x):
    return np.where(np.isnan(x), 0.0, np.sign(x))


class NumpyRprop(_NumpyOptimizer):
    def __init__(self, params, *, learning_rate=1e-2, etas=(0.5, 1.2),
                 step_sizes=(1e-6, 50.0), maximize=False,
                 weight_decay_mask=None):
        self.etaminus, self.etaplus = (float(e) for e in etas)
        self.size_min, self.size_max = (float(s) for s in step_sizes)
        super().__init__(params, learning_rate, 0.0, maximize,
                         weight_decay_mask)

    def _new_state(self, param):
        return {"prev": np.zeros_like(param), "step_size": None}

    def _update(self, param, g, state, lr, t):
        if state["step_size"] is None:
            state["step_size"] = np.full_like(param, lr)
        s = _torch_sign(g * state["prev"])
        factor = np.where(s > 0, self.etaplus,
                          np.where(s < 0, self.etaminus, 1.0))
        state["step_size"] = np.clip(state["step_size"] * factor,
                                     self.size_min, self.size_max)
        g = np.where(s < 0, 0.0, g)
        state["prev"] = g
        return param - _torch_sign(g) * state["step_size"]
