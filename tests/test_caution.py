"""`caution=True` on AdamW (and Adam with decoupled decay) against timm
1.0.31's AdamWLegacy(caution=True). Not in the spec database: a second spec
for the class would need a registry name of its own (tests/test_resume.py's
layout rules are keyed by it)."""

import numpy as np
import pytest

import harness
import keras_optzoo as oz

try:
    from reference.external import timm_optim
except ImportError:
    from tests.reference.external import timm_optim

AdamWLegacy = timm_optim("adamw").AdamWLegacy


class _Config:
    grad_scale = 1.0
    param_scale = 1.0


CASES = {
    "default": {},
    "wd_amsgrad": {"weight_decay": 0.1, "amsgrad": True},
    "maximize": {"maximize": True},
}


@pytest.mark.parametrize("mode", harness.modes())
@pytest.mark.parametrize("case", sorted(CASES))
def test_cautious_adamw_matches_timm(case, mode):
    kwargs = dict(CASES[case])
    init, grads = harness.problem(_Config())
    lrs = harness.lr_schedule_for({"learning_rate": 0.01}, 0.01)
    ours = harness.run_ours(oz.AdamW(learning_rate=0.01, caution=True,
                                     **kwargs), init, grads, lrs, mode)
    theirs = harness.run_torch(
        lambda ps: AdamWLegacy(ps, lr=0.01, caution=True, foreach=False,
                               **kwargs), init, grads, lrs)
    harness.assert_trajectory_close(ours, theirs, init,
                                    what="timm AdamWLegacy(caution=True)")
    plain = harness.run_torch(
        lambda ps: AdamWLegacy(ps, lr=0.01, foreach=False, **kwargs), init,
        grads, lrs)
    with pytest.raises(AssertionError):  # the mask did something
        harness.assert_trajectory_close(ours, plain, init)


def test_adamw_legacy_without_caution_is_torch_adamw():
    import torch

    init, grads = harness.problem(_Config())
    a = harness.run_torch(lambda ps: AdamWLegacy(ps, lr=0.01, foreach=False),
                          init, grads)
    b = harness.run_torch(lambda ps: torch.optim.AdamW(ps, lr=0.01), init,
                          grads)
    harness.assert_trajectory_close(a, b, init, what="torch AdamW")


def test_adam_decoupled_caution_equals_adamw_caution():
    init, grads = harness.problem(_Config(), steps=20)
    a = harness.run_ours(oz.AdamW(learning_rate=0.01, caution=True), init,
                         grads)
    b = harness.run_ours(oz.Adam(learning_rate=0.01, caution=True,
                                 weight_decay=0.01,
                                 decoupled_weight_decay=True), init, grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_caution_takes_the_foreach_path_not_the_fused_kernel():
    """The mask's per-tensor mean is a fast-path reduction (its equality
    with the per-variable path: tests/test_multi_tensor.py); torch's fused
    Adam kernel has no mask, so a cautious instance never gets it."""
    from keras_optzoo.fastpath import fused

    assert oz.AdamW(caution=True).supports_multi_tensor is True
    assert oz.AdamW().supports_multi_tensor is True
    assert fused.kernel_for(oz.AdamW(caution=True)) is None
    cfg = oz.AdamW(caution=True).get_config()
    assert cfg["caution"] is True
    assert oz.AdamW.from_config(cfg).caution is True
