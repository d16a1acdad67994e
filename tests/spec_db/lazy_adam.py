"""LazyAdam against torch.optim.SparseAdam fed the present rows as a sparse
COO gradient."""

import torch

import keras_optzoo as oz

try:
    from specs import BETA_ERRORS, Config, converter, ErrorCase, OptimizerSpec
    from reference.np_lazy_adam import NumpyLazyAdam
except ImportError:  # imported as tests.spec_db.lazy_adam
    from tests.specs import (BETA_ERRORS, Config, converter, ErrorCase,
                             OptimizerSpec)
    from tests.reference.np_lazy_adam import NumpyLazyAdam


def sparse_rows(grad):
    """A dense gradient as torch's sparse COO gradient of its present rows:
    rows (first-axis slices) that are not all zero; each element of a 1-D
    tensor; a 0-d tensor is present when nonzero. NaN/inf count as nonzero."""
    if grad.dim() == 0:
        if bool(grad != 0):
            return grad.to_sparse()
        return torch.sparse_coo_tensor(
            torch.zeros((0, 0), dtype=torch.long),
            torch.zeros((0,), dtype=grad.dtype), size=(),
            check_invariants=True)
    rows = torch.nonzero((grad.reshape(grad.shape[0], -1) != 0).any(dim=1))
    rows = rows[:, 0]
    return torch.sparse_coo_tensor(rows[None, :], grad[rows], grad.shape,
                                   check_invariants=True)


class SparseAdamOnRows:
    """torch.optim.SparseAdam whose ``step()`` first turns each dense
    ``p.grad`` the harness set into the sparse gradient of its present rows.
    Has torch's optimizer interface (``param_groups``, ``zero_grad``)."""

    def __init__(self, params, **kwargs):
        self.inner = torch.optim.SparseAdam(params, **kwargs)
        self.param_groups = self.inner.param_groups
        self.state = self.inner.state

    def zero_grad(self, set_to_none=True):
        self.inner.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and not p.grad.is_sparse:
                    p.grad = sparse_rows(p.grad)
        return self.inner.step(closure)


_reference_kwargs = converter(betas=(0.9, 0.999))


SPECS = [
    OptimizerSpec(
        name="lazyadam",
        slots=lambda kw, shape: [("exp_avg", False), ("exp_avg_sq", False)],
        cls=oz.LazyAdam,
        torch_cls=torch.optim.SparseAdam,
        make_reference=SparseAdamOnRows,
        reference_kwargs=_reference_kwargs,
        reference_name="torch.optim 2.13 SparseAdam (rows as sparse COO)",
        numpy_reference=NumpyLazyAdam,
        capabilities=frozenset({"maximize"}),
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            Config("maximize", {"learning_rate": 0.01, "maximize": True}),
            # ε is added to the uncorrected sqrt(v): visible at 1e-6
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=BETA_ERRORS[:3] + [
            ErrorCase({"epsilon": 0.0}, ValueError,
                      r"Argument `epsilon` must be > 0\. Received: epsilon=0"),
            # torch.optim.SparseAdam rejects lr <= 0
            ErrorCase({"learning_rate": 0.0}, ValueError,
                      r"Argument `learning_rate` must be > 0\. "
                      r"Received: learning_rate=0"),
            ErrorCase({"weight_decay": 0.1}, ValueError,
                      r"LazyAdam has no weight decay.*"
                      r"Received: weight_decay=0\.1"),
        ],
    ),
]
