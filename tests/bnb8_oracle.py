"""bitsandbytes 0.50.2 (CPU) as the oracle of the 8-bit optimizers: runs a
bitsandbytes optimizer on the torch tensors of Keras variables (ported with
the layout rule) and measures elementwise deviations."""

import warnings

import numpy as np
import torch

from keras import ops

from keras_optzoo import layout as _layout

# Keras names (a "kernel" is read by the layout rule) and shapes: a Dense
# kernel of 5000 elements (its last 256-block is partial) and a Conv2D
# kernel of 4608, both quantised; a bias stays float32.
NAMES = ["kernel", "kernel", "bias"]
SHAPES = [(50, 100), (3, 3, 16, 32), (32,)]
STEPS = 50
LR_CHANGE_AT = 30


def bnb():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import bitsandbytes

    return bitsandbytes


class _Var:  # what layout.resolve reads: a path and a shape
    def __init__(self, name, shape):
        self.path, self.shape = name, shape


def layouts(names=NAMES, shapes=SHAPES):
    return [_layout.resolve(_Var(n, s)) for n, s in zip(names, shapes)]


def to_torch(arrays, lays):
    return [np.ascontiguousarray(ops.convert_to_numpy(l.to_torch(a)))
            for a, l in zip(arrays, lays)]


def from_torch(arrays, lays):
    return [ops.convert_to_numpy(l.from_torch(a))
            for a, l in zip(arrays, lays)]


def problem(seed=0, steps=STEPS, shapes=SHAPES, grad_scale=1.0):
    """Initial params and gradients (per-tensor scales spread over four
    decades so the blocks' absmax and the maps' small entries are used)."""
    rng = np.random.default_rng(seed)
    params = [(0.05 * rng.normal(size=s)).astype("float32") for s in shapes]
    grads = []
    for _ in range(steps):
        grads.append([
            (grad_scale * rng.normal(size=s)
             * np.exp(rng.normal(size=s) * 1.5)).astype("float32")
            for s in shapes])
    return params, grads


def lrs(lr, steps=STEPS):
    return [lr * (0.3 if t >= LR_CHANGE_AT else 1.0) for t in range(steps)]


def run_bnb(cls_name, kwargs, init, grads, learning_rates, lays):
    """bitsandbytes' optimizer on the torch tensors; returns the Keras
    layout params (numpy)."""
    optim = bnb().optim
    params = [torch.tensor(p, requires_grad=True)
              for p in to_torch(init, lays)]
    opt = getattr(optim, cls_name)(params, **kwargs)
    for t, g in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = learning_rates[t]
        for p, gi in zip(params, to_torch(g, lays)):
            p.grad = torch.tensor(gi)
        opt.step()
    return from_torch([p.detach().numpy() for p in params], lays)


def deviation(ours, ref, init):
    """Elementwise |ours - ref| / max|ref - init| of the same tensor, over
    all elements: (fraction <= 1e-5, fraction > 1e-3, max)."""
    rel = []
    for o, r, i in zip(ours, ref, init):
        r64 = np.asarray(r, np.float64)
        scale = float(np.max(np.abs(r64 - i)))
        assert scale > 0, "the reference did not move"
        rel.append((np.abs(np.asarray(o, np.float64) - r64) / scale).ravel())
    rel = np.concatenate(rel)
    return (float(np.mean(rel <= 1e-5)), float(np.mean(rel > 1e-3)),
            float(rel.max()))
