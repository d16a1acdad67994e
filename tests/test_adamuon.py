"""AdaMuon's own rule against timm 1.0.31's Muon(algo="adamuon") on
matrices large enough for timm's routing (the generic shapes all take the
fallback): a wide and a tall Dense kernel read as torch's transposed Linear
weights, a Conv2D kernel read as torch's (out, in, kh, kw), and a vector."""

import numpy as np
import pytest
import torch

import harness
import specs  # noqa: F401  (loads spec_db before the import below)
import keras_optzoo as oz
from spec_db.adamuon import TimmAdaMuon


@pytest.mark.parametrize("kw", [
    {},
    {"adjust_lr_fn": None, "nesterov": True, "weight_decay": 0.1},
    {"adjust_lr_fn": "rms_to_rms", "ns_coefficients": "polar_express"},
    {"adjust_lr_fn": "rsqrt_in", "ns_coefficients": "original",
     "ns_steps": 3},
])
def test_against_timm_through_the_layout_rule(kw):
    rng = np.random.default_rng(0)
    shapes = [(8, 16), (24, 8), (3, 3, 4, 8), (8,)]
    names = ["kernel", "kernel", "kernel", "bias"]
    init = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes]
             for _ in range(12)]
    kw = {"learning_rate": 0.01, "ns_dtype": "float32", **kw}
    opt = oz.AdaMuon(**kw)
    ours = harness.run_ours(opt, init, grads, names=names)
    assert opt.rules == ["adamuon", "adamuon", "adamuon", "adamw"]

    def to_torch(a):
        if a.ndim == 2:
            return a.T
        if a.ndim == 4:
            return a.transpose(3, 2, 0, 1)
        return a

    def from_torch(a):
        if a.ndim == 2:
            return a.T
        if a.ndim == 4:
            return a.transpose(2, 3, 1, 0)
        return a

    params = [torch.tensor(to_torch(p).copy(), requires_grad=True)
              for p in init]
    tkw = {k: v for k, v in kw.items() if k != "learning_rate"}
    ref = TimmAdaMuon(params, lr=0.01, **tkw)
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = torch.tensor(to_torch(gi).copy())
        ref.step()
    theirs = [from_torch(p.detach().numpy()) for p in params]
    harness.assert_trajectory_close(ours, theirs, init,
                                    what="timm Muon(algo='adamuon')")
