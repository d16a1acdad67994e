"""SOAP on shapes the generic harness does not have (tests/spec_db/soap.py
says why): precondition_1d on a vector, merge_dims (channels_first and
channels_last), a merge with a rank-deficient first statistic; and the
sign convention of the bases.

Tolerance per case: max(1e-5, 2 x the reference's own float32-vs-float64
gap), the gap measured here by running pytorch-optimizer's SOAP once more
in float64. Measured gaps (60 steps, lr 0.01): precondition_1d on (2,)
7.4e-6, merge (2, 2, 4) -> (4, 4) 6.4e-6, channels_last (2, 2, 2, 2)
5.3e-6, merge (2, 3, 2) -> (6, 2) 1.3e-1 (the 6x6 statistic has rank 2 at the
first eigendecomposition: its null-space basis is the eigensolver's
choice, so that case checks only that the run stays within the
reference's own float32 uncertainty).
"""

import numpy as np
import pytest
import torch
from pytorch_optimizer import SOAP as ReferenceSOAP

from keras import ops

import harness
import keras_optzoo as oz
from keras_optzoo.optimizers import _matrix


def _reference(init, grads, lrs, kwargs, dtype):
    params = [torch.tensor(p, dtype=dtype, requires_grad=True) for p in init]
    kw = {("lr" if k == "learning_rate" else k): v for k, v in kwargs.items()}
    opt = ReferenceSOAP(params, **kw)
    for t, step_grads in enumerate(grads):
        for group in opt.param_groups:
            group["lr"] = lrs[t]
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=dtype)
        opt.step()
    return [p.detach().numpy().astype(np.float64) for p in params]


CASES = [
    pytest.param([(2,), (3, 4)], {"precondition_1d": True}, id="1d"),
    pytest.param([(2, 2, 4), (3, 4), ()],
                 {"merge_dims": True, "max_precondition_dim": 4}, id="merge"),
    pytest.param([(2, 2, 2, 2), (3, 4)],
                 {"merge_dims": True, "max_precondition_dim": 4,
                  "data_format": "channels_last"}, id="channels_last"),
    pytest.param([(2, 3, 2), (3, 4)],
                 {"merge_dims": True, "max_precondition_dim": 6},
                 id="merge_rank_deficient"),
]


@pytest.mark.parametrize("shapes,kwargs", CASES)
def test_trajectory_on_other_shapes(shapes, kwargs):
    kwargs = {"learning_rate": 0.01, "precondition_frequency": 4, **kwargs}
    config = type("C", (), {"param_scale": 1.0, "grad_scale": 1.0})
    init, grads = harness.problem(config, shapes=shapes)
    lrs = harness.lr_schedule_for(kwargs, 3e-3)
    ref32 = _reference(init, grads, lrs, kwargs, torch.float32)
    ref64 = _reference(init, grads, lrs, kwargs, torch.float64)
    scale = max(float(np.max(np.abs(r - i))) for r, i in zip(ref32, init))
    gap = max(float(np.max(np.abs(a - b)))
              for a, b in zip(ref32, ref64)) / scale
    tol = max(1e-5, 2.0 * gap)
    mode = harness.modes()[-1]  # compiled on JAX and TF
    ours = harness.run_ours(oz.SOAP(**kwargs), init, grads, lrs, mode)
    rel = harness.assert_trajectory_close(ours, ref32, init, rtol=tol)
    print(f"\nsoap {kwargs} {mode}: deviation {rel:.2e}, reference "
          f"f32-vs-f64 gap {gap:.2e}, tolerance {tol:.2e}")


def test_bases_have_descending_order_and_fixed_signs():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4)).astype("float32")
    gram = a @ a.T
    q = ops.convert_to_numpy(_matrix.eigenbasis(ops.convert_to_tensor(gram)))
    values = np.diag(q.T @ gram.astype(np.float64) @ q)
    assert np.all(np.diff(values) < 0)
    pivots = q[np.argmax(np.abs(q), axis=0), np.arange(4)]
    assert np.all(pivots > 0)
    _, expected = np.linalg.eigh(gram.astype(np.float64))
    expected = expected[:, ::-1]
    expected = expected * np.sign(
        expected[np.argmax(np.abs(expected), axis=0), np.arange(4)])
    np.testing.assert_allclose(q, expected, atol=1e-5)
    order, refreshed = _matrix.qr_refresh(ops.convert_to_tensor(gram),
                                          ops.convert_to_tensor(q))
    refreshed = ops.convert_to_numpy(refreshed)
    assert list(ops.convert_to_numpy(order)) == [0, 1, 2, 3]
    pivots = refreshed[np.argmax(np.abs(refreshed), axis=0), np.arange(4)]
    assert np.all(pivots > 0)
    np.testing.assert_allclose(refreshed.T @ refreshed, np.eye(4), atol=1e-5)


def test_merged_shape():
    assert _matrix.merged_shape((2, 3, 2), 6) == (6, 2)
    assert _matrix.merged_shape((1, 2, 512, 1, 2048, 1, 3, 4), 1024) == \
        (1024, 2048, 12)
    assert _matrix.merged_shape((2, 3, 2), 100) == (12,)
