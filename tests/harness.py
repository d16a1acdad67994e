"""Runs an optimizer over a fixed gradient sequence, eagerly or compiled,
and runs the torch / NumPy oracles over the same sequence."""

import numpy as np
import torch

import keras
from keras import ops

SHAPES = [(3, 4), (5,), (), (2, 3, 2)]
STEPS = 60
LR_CHANGE_AT = 30
LR_FACTOR = 0.3


def backend():
    return keras.backend.backend()


def modes():
    """Execution modes to check on the active backend.

    "compiled" is JAX's ``stateless_apply`` under ``jax.jit`` and TF's
    ``tf.function(jit_compile=True)``. The torch backend has no compiled
    optimizer step of this kind (Keras runs it eagerly; torch.compile is not
    Keras's torch training path), so it runs the eager mode only.
    """
    return ["eager", "compiled"] if backend() in ("jax", "tensorflow") \
        else ["eager"]


def problem(config, seed=0, steps=STEPS, shapes=SHAPES):
    """Initial params and a gradient sequence, float32 numpy."""
    rng = np.random.default_rng(seed)
    params = [
        (config.param_scale * rng.normal(size=s)).astype("float32")
        for s in shapes
    ]
    grads = [
        [(config.grad_scale * rng.normal(size=s)).astype("float32")
         for s in shapes]
        for _ in range(steps)
    ]
    return params, grads


def lr_schedule_for(kwargs, default_lr):
    """Per-step learning rates with the mid-run change; None where the
    optimizer computes its own step size and takes no learning rate
    (HFAdafactor's ``relative_step``, whose reference ignores ``lr``)."""
    lr = kwargs.get("learning_rate", default_lr)
    if lr is None:
        return None
    return [lr * (LR_FACTOR if t >= LR_CHANGE_AT else 1.0)
            for t in range(STEPS)]


class Stepper:
    """Applies gradients with a Keras optimizer in one execution mode.

    ``step(grads, lr=None)`` applies one list of numpy gradients (setting a
    new float learning rate first when given); ``params()`` returns numpy.
    """

    def __init__(self, optimizer, init_params, mode="eager", names=None):
        self.opt = optimizer
        self.mode = mode
        # names: the variables' names (a "kernel" is read as a layer's
        # kernel by the layout rule); plain arrays otherwise
        self.vars = [keras.Variable(p) if names is None
                     else keras.Variable(p, name=n)
                     for p, n in zip(init_params,
                                     names or [None] * len(init_params))]
        optimizer.build(self.vars)
        if mode == "compiled" and backend() == "jax":
            import jax

            self._opt_values = [v.value for v in optimizer.variables]
            # the built state, for reset() (immutable arrays: no copy)
            self._initial = list(self._opt_values)
            self._var_values = [v.value for v in self.vars]
            self._jit = jax.jit(optimizer.stateless_apply)
        elif mode == "compiled" and backend() == "tensorflow":
            import tensorflow as tf

            # the built state, for reset()
            self._initial = [ops.convert_to_numpy(v)
                             for v in optimizer.variables]
            self._jit = tf.function(
                lambda grads: optimizer.apply(grads, self.vars),
                jit_compile=True,
            )
        elif mode == "compiled":
            raise ValueError(f"No compiled mode on backend {backend()}")

    def _set_lr(self, lr):
        if self.mode == "compiled" and backend() == "jax":
            index = [id(v) for v in self.opt.variables].index(
                id(self.opt._learning_rate)
            )
            self._opt_values[index] = ops.convert_to_tensor(
                np.float32(lr)
            )
        else:
            self.opt.learning_rate = lr

    def step(self, grads, lr=None):
        if lr is not None:
            self._set_lr(lr)
        tensors = [ops.convert_to_tensor(g) for g in grads]
        if self.mode == "eager":
            self.opt.apply(tensors, self.vars)
        elif backend() == "jax":
            self._var_values, self._opt_values = self._jit(
                self._opt_values, tensors, self._var_values
            )
        else:
            self._jit(tensors)

    def reset(self, init_params):
        """Starts over from ``init_params`` with the optimizer's state as
        ``build`` left it, keeping the compiled step: several runs of one
        optimizer config on equal shapes (test_numerics.py's huge, tiny and
        NaN gradients) then compile once. Compiled modes only: on torch the
        eager multi-tensor path keeps recordings of earlier steps (a replay
        keyed to the step count), which a rewound count would mislead, and
        there is no compilation to save."""
        if self.mode != "compiled":
            raise ValueError("reset() is for the compiled modes")
        if backend() == "jax":
            self._opt_values = list(self._initial)
            self._var_values = [ops.convert_to_tensor(p) for p in init_params]
            return
        for v, x in zip(self.opt.variables, self._initial):
            v.assign(x)
        for v, p in zip(self.vars, init_params):
            v.assign(p)

    def params(self):
        if self.mode == "compiled" and backend() == "jax":
            return [np.asarray(v) for v in self._var_values]
        return [ops.convert_to_numpy(v) for v in self.vars]

    def sync(self):
        """Writes JAX's stateless values back into the Keras variables."""
        if self.mode == "compiled" and backend() == "jax":
            for v, value in zip(self.vars, self._var_values):
                v.assign(value)
            for v, value in zip(self.opt.variables, self._opt_values):
                v.assign(value)


def run_ours(optimizer, init_params, grads, lrs=None, mode="eager",
             names=None):
    stepper = Stepper(optimizer, init_params, mode, names)
    for t, g in enumerate(grads):
        lr = None
        if lrs is not None and (t == 0 or lrs[t] != lrs[t - 1]):
            lr = lrs[t]
        stepper.step(g, lr)
    return stepper.params()


def run_torch(make, init_params, grads, lrs=None):
    """``make(params) -> torch.optim.Optimizer``; float32 like ours."""
    params = [torch.tensor(p, requires_grad=True) for p in init_params]
    opt = make(params)
    for t, g in enumerate(grads):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[t]
        for p, gi in zip(params, g):
            p.grad = torch.tensor(gi)
        opt.step()
    return [p.detach().numpy().copy() for p in params]


def run_numpy(reference, init_params, grads, lrs=None):
    for t, g in enumerate(grads):
        if lrs is not None:
            reference.learning_rate = lrs[t]
        reference.step(g)
    return [np.asarray(p) for p in reference.params]


def assert_trajectory_close(ours, ref, init, rtol=1e-5, what="reference"):
    """max |θ_ours − θ_ref| <= rtol · max |θ_ref − θ_0| (DESIGN.md §4)."""
    scale = max(float(np.max(np.abs(np.asarray(r, np.float64) - i)))
                for r, i in zip(ref, init))
    dev = max(float(np.max(np.abs(np.asarray(o, np.float64) - r)))
              for o, r in zip(ours, ref))
    assert scale > 0, "the reference did not move: the check would be empty"
    assert dev <= rtol * scale, (
        f"deviation from {what}: {dev:.3e} > {rtol:g} * {scale:.3e} "
        f"(relative {dev / scale:.3e})"
    )
    return dev / scale


def assert_distribution_close(ours, ref, init, what="reference",
                              close=1e-5, min_close=0.99, far=1e-3,
                              max_far=1e-3, worst=0.1):
    """The 8-bit optimizers' criterion (issue 22): with each element's
    deviation relative to its tensor's max |θ_ref − θ_0|, at least
    ``min_close`` of all elements within ``close``, at most ``max_far``
    beyond ``far`` and none beyond ``worst``. Returns the three figures."""
    rel = []
    for o, r, i in zip(ours, ref, init):
        r64 = np.asarray(r, np.float64)
        scale = float(np.max(np.abs(r64 - i)))
        assert scale > 0, "the reference did not move: the check is empty"
        rel.append(np.ravel(np.abs(np.asarray(o, np.float64) - r64) / scale))
    rel = np.concatenate(rel)
    figures = (float(np.mean(rel <= close)), float(np.mean(rel > far)),
               float(rel.max()))
    assert (figures[0] >= min_close and figures[1] <= max_far
            and figures[2] <= worst), (
        f"deviation from {what}: {figures[0]:.4%} within {close:g}, "
        f"{figures[1]:.4%} beyond {far:g}, max {figures[2]:.3e}")
    return figures


def digits(n=256):
    """scikit-learn's 8x8 digits (shipped with the package), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data[:n] / 16.0).astype("float32")
    y = data.target[:n].astype("int32")
    return x, y


def fit_jit_compile(spec_name=None):
    """``jit_compile`` for a test's ``model.compile``.

    torch: False (Keras's jit_compile there is torch.compile, a separate
    compiler this package does not target; fit trains eagerly). JAX: True
    (fit always jits). TensorFlow: XLA for the optimizers of
    ``specs.MECHANISMS`` (one per way the base class declares and writes
    state) and for tests not about one optimizer (``spec_name=None``); the
    other optimizers' fit-level tests run ``tf.function`` without XLA. XLA
    compilation of each optimizer's update in every config is checked by
    ``test_optimizers.py::test_trajectory_matches_torch_and_numpy`` (TF's
    "compiled" mode is ``tf.function(jit_compile=True)``); XLA-compiling
    whole train steps once more per optimizer costs 3-6 s per model on the
    2-core CI machine and checks nothing the two leave open.
    """
    if backend() == "torch":
        return False
    if backend() == "tensorflow" and spec_name is not None:
        import specs

        return (spec_name in specs.MECHANISMS
                or getattr(specs.SPECS_BY_NAME.get(spec_name),
                           "fit_xla_on_tf", False))
    return True


def digits_model(optimizer, jit_compile=None):
    """A small seeded MLP on the digits, compiled with ``optimizer``
    (``jit_compile``: :func:`fit_jit_compile` by default)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=fit_jit_compile() if jit_compile is None
        else jit_compile,
    )
    return model


def run_worker(args, env, timeout, cwd=None):
    """Runs ``python *args`` in a subprocess — for what must be set before
    an import (XLA's device count, jax_enable_x64, tf.distribute devices) —
    and returns the JSON its last ``RESULT `` line prints. A failed run fails
    the test with the end of its stderr."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines()
            if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])
