"""AdaMuon's own rule against timm 1.0.31's Muon(algo="adamuon") and the
NumPy reference on matrices large enough for timm's routing (the generic
shapes all take the fallback): a wide and a tall Dense kernel read as
torch's transposed Linear weights, a Conv2D kernel read as torch's
(out, in, kh, kw), and a vector; 60 steps with the mid-run learning-rate
change.

Mode: compiled on JAX/TF (how ``fit`` runs the optimizer there), eager on
torch (Keras's torch training path); the eager keras.ops code is the same
that the torch backend runs, and eager JAX spends ~3 s per step dispatching
the Newton-Schulz iterations of three matrices on the 2-core CI machine."""

import numpy as np
import pytest
import torch

import harness
import specs
import keras_optzoo as oz
from spec_db.adamuon import TimmAdaMuon

SPEC = specs.SPECS_BY_NAME["adamuon"]
SHAPES = [(8, 16), (24, 8), (3, 3, 4, 8), (8,)]
NAMES = ["kernel", "kernel", "kernel", "bias"]


def _to_torch(a):
    if a.ndim == 2:
        return a.T
    if a.ndim == 4:
        return a.transpose(3, 2, 0, 1)
    return a


def _from_torch(a):
    if a.ndim == 2:
        return a.T
    if a.ndim == 4:
        return a.transpose(2, 3, 1, 0)
    return a


def _dev(ours, ref, init):
    scale = max(float(np.abs(np.asarray(r, np.float64) - i).max())
                for r, i in zip(ref, init))
    return max(float(np.abs(np.asarray(o, np.float64) - r).max())
               for o, r in zip(ours, ref)) / scale


@pytest.mark.parametrize("kw", [
    {},
    {"adjust_lr_fn": None, "nesterov": True, "weight_decay": 0.1},
    {"adjust_lr_fn": "rms_to_rms", "ns_coefficients": "polar_express"},
    {"adjust_lr_fn": "rsqrt_in", "ns_coefficients": "original",
     "ns_steps": 3},
], ids=["default", "nesterov_wd_none", "rms_to_rms", "rsqrt_in"])
def test_against_timm_through_the_layout_rule(kw):
    """Tolerance (DESIGN): max(1e-5, 2 x timm's own float32-vs-float64
    gap), the gap measured here against the float64 NumPy reference."""
    config = specs.Config("adamuon_rule", kw)
    init, grads = harness.problem(config, shapes=SHAPES)
    kw = {"learning_rate": 0.01, "ns_dtype": "float32", **kw}
    lrs = harness.lr_schedule_for(kw, 0.02)
    mode = harness.modes()[-1]
    opt = oz.AdaMuon(**kw)
    ours = harness.run_ours(opt, init, grads, lrs, mode, names=NAMES)
    assert opt.rules == ["adamuon", "adamuon", "adamuon", "adamw"]

    torch_init = [_to_torch(p).copy() for p in init]
    torch_grads = [[_to_torch(g).copy() for g in step] for step in grads]
    tkw = {k: v for k, v in kw.items() if k != "learning_rate"}
    theirs = harness.run_torch(
        lambda ps: TimmAdaMuon(ps, lr=kw["learning_rate"], **tkw),
        torch_init, torch_grads, lrs)
    exact = harness.run_numpy(SPEC.reference(torch_init, **kw), torch_init,
                              torch_grads, lrs)
    theirs = [_from_torch(p) for p in theirs]
    exact = [_from_torch(p) for p in exact]
    gap = _dev(theirs, exact, init)
    to_timm, to_numpy = _dev(ours, theirs, init), _dev(ours, exact, init)
    print(f"AdaMuon {kw} ({mode}): ours vs timm f32 {to_timm:.2e}, "
          f"vs NumPy f64 {to_numpy:.2e}; timm f32 vs NumPy f64 {gap:.2e}")
    tolerance = max(1e-5, 2 * gap)
    assert to_timm <= tolerance
    assert to_numpy <= tolerance


def test_bfloat16_newton_schulz_within_timms_own_bf16_error():
    """timm's default: Newton-Schulz in bfloat16. Tolerance: timm's own
    bfloat16-vs-float32 difference on the same problem (as for Muon in
    tests/test_muon.py); 20 steps, the mode as above."""
    kw = {"learning_rate": 0.01}
    init, grads = harness.problem(specs.Config("bf16", kw), steps=20,
                                  shapes=[(16, 32), (24, 8), (5,)])
    lrs = harness.lr_schedule_for(kw, 0.02)[:20]
    torch_init = [_to_torch(p).copy() for p in init]
    torch_grads = [[_to_torch(g).copy() for g in step] for step in grads]
    timm = {
        ns_dtype: [_from_torch(p) for p in harness.run_torch(
            lambda ps: TimmAdaMuon(ps, lr=0.01, ns_dtype=ns_dtype),
            torch_init, torch_grads, lrs)]
        for ns_dtype in ("bfloat16", "float32")}
    mode = harness.modes()[-1]
    ours = harness.run_ours(oz.AdaMuon(**kw), init, grads, lrs, mode,
                            names=["kernel", "kernel", "bias"])
    timm_own = _dev(timm["bfloat16"], timm["float32"], init)
    ours_bf16 = _dev(ours, timm["bfloat16"], init)
    print(f"AdaMuon bfloat16 ({mode}): ours vs timm bf16 {ours_bf16:.2e}, "
          f"timm bf16 vs timm f32 {timm_own:.2e}")
    assert timm_own > 1e-4  # bfloat16 really ran on both sides
    assert ours_bf16 <= timm_own
