"""MARS beyond the spec database's trajectories (tests/spec_db/mars.py):
non-finite gradients in the Lion variant (torch's sign of NaN is 0) and the
``maximize`` extension, against timm 1.0.31's Mars."""

import numpy as np
import pytest

import harness
import keras_optzoo as oz
from test_numerics import _assert_same_propagation

try:
    from reference.external import timm_optim
except ImportError:
    from tests.reference.external import timm_optim

Mars = timm_optim("mars").Mars


class _Config:
    grad_scale = 1.0
    param_scale = 1.0


@pytest.mark.parametrize("kwargs", [
    {"mars_type": "lion", "weight_decay": 0.1},
    {"mars_type": "lion", "optimize_1d": True, "caution": True},
    {"mars_type": "adamw", "optimize_1d": True},
], ids=["lion", "lion_1d_caution", "adamw_1d"])
def test_nan_and_inf_gradients_propagate_like_timm(kwargs):
    """A NaN or inf element makes a MARS tensor's norm NaN/inf: timm's
    whole corrected gradient follows (a NaN momentum, whose Lion sign is
    0: the parameter then moves by its decay only). The masks must agree."""
    init, grads = harness.problem(_Config(), steps=8,
                                  shapes=[(3, 4), (5,), ()])
    grads[2][0][0, 0] = np.nan
    grads[4][0][1, 2] = np.inf
    grads[5][1][3] = -np.inf
    grads[6][2] = np.float32(np.nan)
    ours = harness.run_ours(oz.MARS(learning_rate=0.01, **kwargs), init,
                            grads, mode=harness.modes()[-1])
    theirs = harness.run_torch(lambda ps: Mars(ps, lr=0.01, **kwargs),
                               init, grads)
    # Lion: timm's parameters stay finite (sign(NaN) = 0), JAX's and TF's
    # sign would make them NaN; AdamW: NaN in the hit tensors
    _assert_same_propagation(ours, theirs, rtol=1e-5, init=init)
    assert np.isnan(theirs[0]).any() == (kwargs["mars_type"] == "adamw")


@pytest.mark.parametrize("mars_type", ["adamw", "lion"])
def test_maximize_is_the_step_on_the_negated_gradient(mars_type):
    """timm's Mars has no ``maximize``: ours negates the gradient first
    (the stored previous gradient too), so it must equal timm on -g."""
    init, grads = harness.problem(_Config(), steps=30)
    kwargs = {"mars_type": mars_type, "weight_decay": 0.05}
    ours = harness.run_ours(oz.MARS(learning_rate=0.01, maximize=True,
                                    **kwargs), init, grads,
                            mode=harness.modes()[-1])
    theirs = harness.run_torch(lambda ps: Mars(ps, lr=0.01, **kwargs), init,
                               [[-g for g in step] for step in grads])
    harness.assert_trajectory_close(ours, theirs, init,
                                    what="timm Mars on -g")
