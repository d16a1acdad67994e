"""Kron's randomness and compiled-step behaviour (the trajectories of every
config are the generic tests', through tests/spec_db/kron.py).

* ``probe_fn`` / ``balance_fn``: injected probes and coins (forcing a
  balancing every 4th step), on a Dense kernel read through the layout rule
  (Keras (in, out) = torch (out, in)): timm is fed the same probes in the
  torch layout. Tolerance max(1e-5, 2 x timm's own float32-vs-float64 gap),
  the gap measured in the test.
* The seeded draws: the same on every backend (the NumPy mirror), a resumed
  run draws what the uninterrupted one does.
* Compiled steps: traced once; the factors change on update steps only.
"""

import unittest.mock

import numpy as np
import torch

from keras import ops

import harness
import keras_optzoo as oz
from keras_optzoo.optimizers import kron as kron_module
from reference.external import timm_optim
from reference.np_kron import draws

_timm = timm_optim("kron")


def _run_timm(init, grads, probes, coins, kwargs, dtype):
    """timm's Kron on torch-layout ``init``/``grads`` with the given probes
    (per step, per parameter, torch layout) and balancing coins."""
    params = [torch.tensor(p, dtype=dtype, requires_grad=True) for p in init]
    opt = _timm.Kron(params, **kwargs)
    for name in ("_calc_A_and_conjB", "_q_terms", "_precond_grad",
                 "_balance_Q"):
        setattr(opt, name, getattr(_timm, name))
    position = {"t": 0, "i": -1}

    class Rng:
        def random(self):
            position["i"] += 1
            return coins[position["t"]][position["i"]]

    def randn(shape, generator=None, dtype=None, device=None):
        probe = probes[position["t"]][position["i"]]
        return torch.as_tensor(probe).to(dtype).reshape(shape)

    opt.rng = Rng()
    for t, step_grads in enumerate(grads):
        position.update(t=t, i=-1)
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=dtype)
        with unittest.mock.patch.object(torch, "randn", randn):
            opt.step()
    return ([p.detach().numpy().astype(np.float64) for p in params],
            [q.detach().numpy().astype(np.float64)
             for q in opt.state[params[0]]["Q"]])


def test_injected_probes_and_balancing_through_the_layout_rule():
    rng = np.random.default_rng(3)
    keras_shapes = [(3, 5), (4,)]  # a Dense kernel (in, out) and a bias
    steps = 24
    init = [rng.normal(size=s).astype("float32") for s in keras_shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in keras_shapes]
             for _ in range(steps)]
    probes = [[rng.normal(size=s).astype("float32") for s in keras_shapes]
              for _ in range(steps)]
    coins = [[0.0 if (t + 1) % 4 == 0 else 0.5, 0.5] for t in range(steps)]
    tables = [ops.convert_to_tensor(np.stack([p[i] for p in probes]))
              for i in range(len(keras_shapes))]

    def probe_fn(step, index, shape):
        assert tuple(shape) == keras_shapes[index]
        return ops.take(tables[index], step - 1, axis=0)

    def balance_fn(step, index):
        return ops.where(ops.equal(ops.mod(step, 4), 0), 0.0, 0.5)

    kwargs = {"learning_rate": 0.02, "weight_decay": 0.01}
    mode = harness.modes()[-1]
    opt = oz.Kron(probe_fn=probe_fn, balance_fn=balance_fn, **kwargs)
    stepper = harness.Stepper(opt, init, mode, names=["kernel", "bias"])
    for g in grads:
        stepper.step(g)
    stepper.sync()
    ours = stepper.params()
    factors = [ops.convert_to_numpy(opt._slots[f"Q_{i}"][0])
               for i in range(2)]
    t_init = [init[0].T, init[1]]
    t_grads = [[g[0].T, g[1]] for g in grads]
    t_probes = [[p[0].T, p[1]] for p in probes]
    ref_kwargs = {"lr": 0.02, "weight_decay": 0.01}
    ref32, ref_factors = _run_timm(t_init, t_grads, t_probes, coins,
                                   ref_kwargs, torch.float32)
    ref64, _ = _run_timm(t_init, t_grads, t_probes, coins, ref_kwargs,
                         torch.float64)
    ref32 = [ref32[0].T, ref32[1]]
    ref64 = [ref64[0].T, ref64[1]]
    scale = max(float(np.max(np.abs(r - i))) for r, i in zip(ref32, init))
    gap = max(float(np.max(np.abs(a - b)))
              for a, b in zip(ref32, ref64)) / scale
    harness.assert_trajectory_close(ours, ref32, init,
                                    rtol=max(1e-5, 2.0 * gap),
                                    what="timm with the same probes")
    # the factors (torch axes: out, in) equal timm's, balancings included;
    # a balancing rescales them (P = Q^T Q is unchanged, so the parameters
    # alone would not show it): without the forced ones they differ
    _, unbalanced = _run_timm(t_init, t_grads, t_probes,
                              [[0.5, 0.5]] * steps, ref_kwargs,
                              torch.float32)
    for ours_q, ref_q, other_q in zip(factors, ref_factors, unbalanced):
        assert ours_q.shape == ref_q.shape
        np.testing.assert_allclose(ours_q, ref_q, rtol=1e-4, atol=1e-5)
        assert np.max(np.abs(other_q - ref_q)) > 1e-2 * np.max(np.abs(ref_q))


def test_seeded_draws_are_the_documented_hash_and_resume_exactly():
    # the probes and the coin equal the NumPy mirror on this backend
    seed = ops.convert_to_tensor(np.array([12345, 6], "int32"))
    probe = ops.convert_to_numpy(kron_module.hash_normal(seed, (3, 4)))
    coin = float(ops.convert_to_numpy(
        kron_module.hash_uniform(seed, 1, offset=24)[0]))
    expected_probe, expected_coin = draws(12345, 6, (3, 4))
    np.testing.assert_allclose(probe, expected_probe, rtol=1e-5, atol=1e-6)
    assert coin == expected_coin
    many = ops.convert_to_numpy(kron_module.hash_normal(seed, (4000,)))
    assert abs(float(np.mean(many))) < 0.06
    assert abs(float(np.std(many)) - 1.0) < 0.06

    # resume: 3 steps, copy the state into a fresh optimizer built with
    # another seed argument, 3 more == 6 uninterrupted steps
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(3, 4)).astype("float32")]
    grads = [[rng.normal(size=(3, 4)).astype("float32")] for _ in range(6)]
    whole = harness.run_ours(oz.Kron(learning_rate=0.01, seed=9), init,
                             grads)
    first = harness.Stepper(oz.Kron(learning_rate=0.01, seed=9), init)
    for g in grads[:3]:
        first.step(g)
    second = harness.Stepper(oz.Kron(learning_rate=0.01, seed=1),
                             first.params())
    for target, source in zip(second.opt.variables, first.opt.variables):
        target.assign(source)
    for g in grads[3:]:
        second.step(g)
    np.testing.assert_array_equal(second.params()[0], whole[0])


def test_compiled_step_traces_once_and_updates_on_schedule():
    rng = np.random.default_rng(1)
    init = [rng.normal(size=(3, 4)).astype("float32")]
    calls = []

    def probe_fn(step, index, shape):
        calls.append(1)
        return ops.ones(shape)

    opt = oz.Kron(learning_rate=0.01, seed=0, probe_fn=probe_fn,
                  preconditioner_update_probability=0.5)
    mode = harness.modes()[-1]
    stepper = harness.Stepper(opt, init, mode)
    q_var = opt._slots["Q_0"][0]
    previous = ops.convert_to_numpy(q_var)
    changed = []
    for t in range(8):
        stepper.step([rng.normal(size=(3, 4)).astype("float32")])
        stepper.sync()
        current = ops.convert_to_numpy(q_var)
        changed.append(bool(np.any(current != previous)))
        previous = current
    # counter >= 1/0.5: the factors move at steps 2, 4, 6, 8
    assert changed == [False, True] * 4
    if mode == "compiled":
        # traced once: the update branch's probe_fn ran at trace time only
        assert len(calls) == 1, len(calls)
    else:  # eager: the probe is drawn on update steps only
        assert len(calls) == 4
