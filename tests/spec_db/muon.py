"""Spec of Muon: torch.optim.Muon for the 2-D params plus torch.optim.AdamW
for the others (one object with torch's optimizer interface) is the oracle.

``ns_dtype="float32"``: torch.optim.Muon always runs Newton-Schulz in
bfloat16. The float32 oracle is torch's own ``_zeropower_via_newtonschulz``
with its one ``grad.bfloat16()`` cast replaced by a cast to float32 (float64
params stay float64): the function's source is taken from the installed
torch, edited in that one place (an assertion fails if the place moves) and
swapped in for ``torch.optim._muon._zeropower_via_newtonschulz`` during the
reference's ``step()``. Everything else is torch's code.

Orientation: the generic tests' variables are plain arrays, which the
layout rule (keras_optzoo/layout.py) reads as stored, so the oracle is
torch's Muon on the same matrices; tests/test_muon.py checks a Dense
kernel against torch's Muon on the ported (transposed) weight.

The generic tests' configs use ``ns_dtype="float32"`` (the 1e-5 tolerance
is float32's); tests/test_muon.py compares the bfloat16 default with torch's
bfloat16 run at a measured tolerance.
"""

import contextlib
import inspect

import torch
import torch.optim._muon as torch_muon

import keras_optzoo as oz

try:
    from specs import ALL, Config, converter, ErrorCase, OptimizerSpec
    from reference.external import timm_optim
    from reference.np_muon import NumpyMuon
except ImportError:  # imported as tests.spec_db.muon
    from tests.specs import ALL, Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.external import timm_optim
    from tests.reference.np_muon import NumpyMuon


def _float32_newton_schulz():
    source = inspect.getsource(torch_muon._zeropower_via_newtonschulz)
    marker = "ortho_grad = grad.bfloat16()"
    assert source.count(marker) == 1, "torch's Newton-Schulz source changed"
    source = source.replace(
        marker, "ortho_grad = grad.to(torch.promote_types(grad.dtype, "
                "torch.float32), copy=True)")  # bfloat16() copies
    namespace = dict(vars(torch_muon))
    exec(compile(source, torch_muon.__file__, "exec"), namespace)
    return namespace["_zeropower_via_newtonschulz"]


NEWTON_SCHULZ_FLOAT32 = _float32_newton_schulz()


def _is_triple(coefficients):
    return (not isinstance(coefficients, str) and len(coefficients) == 3
            and all(isinstance(c, (int, float)) for c in coefficients))


def timm_newton_schulz(coefficients, ns_dtype):
    """torch.optim.Muon's Newton-Schulz replaced by timm 1.0.31's
    ``zeropower_via_newtonschulz`` with timm's coefficient resolution
    (``resolve_ns_coefficients``: a name, a triple or a list of triples;
    truncated or last-repeated to ``ns_steps``), in ``ns_dtype`` (float64
    params keep float64 for "float32"). torch.optim.Muon takes one triple
    only: this is the oracle of a schedule."""
    timm_muon = timm_optim("muon")
    schedule = timm_muon.resolve_ns_coefficients(coefficients,
                                                 timm_muon._COEFFICIENTS)

    def newton_schulz(grad, ns_coefficients, ns_steps, eps):
        dtype = torch.bfloat16 if ns_dtype == "bfloat16" else \
            torch.promote_types(grad.dtype, torch.float32)
        return timm_muon.zeropower_via_newtonschulz(
            grad, ns_steps, schedule, eps=eps, dtype=dtype)

    return newton_schulz


@contextlib.contextmanager
def newton_schulz_dtype(ns_dtype, coefficients=None):
    """Runs torch.optim.Muon's Newton-Schulz in ``ns_dtype`` inside; with
    ``coefficients`` a name or a list of triples, timm's schedule
    Newton-Schulz (:func:`timm_newton_schulz`) instead."""
    if coefficients is not None and not _is_triple(coefficients):
        replacement = timm_newton_schulz(coefficients, ns_dtype)
    elif ns_dtype == "bfloat16":
        yield
        return
    else:
        replacement = NEWTON_SCHULZ_FLOAT32
    original = torch_muon._zeropower_via_newtonschulz
    torch_muon._zeropower_via_newtonschulz = replacement
    try:
        yield
    finally:
        torch_muon._zeropower_via_newtonschulz = original


class MuonWithAdamW:
    """torch.optim.Muon on the 2-D params, torch.optim.AdamW on the rest.

    With ``transpose=True`` a 2-D param is given to torch.optim.Muon
    transposed, as the port of a Keras Dense kernel ``(in, out)`` to a torch
    Linear weight ``(out, in)`` would hold it: torch's Muon keeps its own
    transposed copy, receives the transposed gradient and writes the
    transposed result back, so ``adjust_lr_fn`` sees torch's ``(out, in)``
    shape. The default gives torch the matrices as they are (plain arrays,
    read as stored by the layout rule).

    ``param_groups`` holds both optimizers' groups (the AdamW ones only when
    ``adamw_lr`` is None, i.e. AdamW follows the Muon learning rate), so
    setting ``group["lr"]`` changes the learning rate as on one optimizer. A
    group's ``weight_decay`` override (a group with decay 0) applies to both.
    """

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95,
                 nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315),
                 eps=1e-7, ns_steps=5, adjust_lr_fn=None,
                 ns_dtype="bfloat16", adamw_lr=None, adamw_betas=(0.9, 0.999),
                 adamw_eps=1e-8, adamw_weight_decay=1e-2, maximize=False,
                 transpose=False):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        muon_groups, adamw_groups = [], []
        #: (our param, the tensor torch's Muon updates)
        self._matrices = []
        for group in params:
            extra = {k: v for k, v in group.items() if k != "params"}
            matrices = []
            for p in group["params"]:
                if p.ndim == 2:
                    q = p.detach().T.clone().requires_grad_(True) \
                        if transpose else p
                    self._matrices.append((p, q))
                    matrices.append(q)
            others = [p for p in group["params"] if p.ndim != 2]
            if matrices:
                muon_groups.append({"params": matrices, **extra})
            if others:
                adamw_groups.append({"params": others, **extra})
        self.ns_dtype = ns_dtype
        self.ns_coefficients = ns_coefficients
        self.maximize = maximize
        self.muon = torch.optim.Muon(
            muon_groups, lr=lr, weight_decay=weight_decay, momentum=momentum,
            nesterov=nesterov,
            # a schedule runs through timm's Newton-Schulz (step())
            ns_coefficients=tuple(ns_coefficients)
            if _is_triple(ns_coefficients) else (3.4445, -4.775, 2.0315),
            eps=eps, ns_steps=ns_steps, adjust_lr_fn=adjust_lr_fn,
        ) if muon_groups else None
        self.adamw = torch.optim.AdamW(
            adamw_groups, lr=lr if adamw_lr is None else adamw_lr,
            betas=adamw_betas, eps=adamw_eps,
            weight_decay=adamw_weight_decay, maximize=maximize,
        ) if adamw_groups else None
        self.param_groups = []
        if self.muon is not None:
            self.param_groups += self.muon.param_groups
        if self.adamw is not None and adamw_lr is None:
            self.param_groups += self.adamw.param_groups

    def zero_grad(self):
        for opt in (self.muon, self.adamw):
            if opt is not None:
                opt.zero_grad()
        for p, _ in self._matrices:
            p.grad = None

    def step(self):
        if self.muon is not None:
            with torch.no_grad():
                for p, q in self._matrices:
                    if q is not p:
                        q.copy_(p.T)
                        q.grad = p.grad.T.contiguous()
                    if self.maximize:  # torch's Muon has no `maximize`
                        q.grad = -q.grad
            with newton_schulz_dtype(self.ns_dtype, self.ns_coefficients):
                self.muon.step()
            with torch.no_grad():
                for p, q in self._matrices:
                    if self.maximize and q is p:
                        p.grad = -p.grad
                    if q is not p:
                        p.copy_(q.T)
        if self.adamw is not None:
            self.adamw.step()


#: Keras-spelled arguments -> :class:`MuonWithAdamW`'s; routing by name is
#: dropped: plain tensors have none
reference_kwargs = converter(
    renames={"adamw_learning_rate": "adamw_lr", "adamw_epsilon": "adamw_eps"},
    betas=(0.9, 0.999), beta_prefix="adamw_beta_", betas_name="adamw_betas",
    drop=("exclude_embeddings", "exclude_layers"))


#: every generic config: float32 Newton-Schulz (see the module docstring),
#: and no routing by name, which the tensor-only oracle cannot see (the
#: Embedding test's table is a 2-D Muon matrix on both sides)
_BASE = {"ns_dtype": "float32", "exclude_embeddings": False}

SPECS = [
    OptimizerSpec(
        name="muon",
        # torch.optim.Muon's momentum_buffer for matrices, torch.optim.AdamW's
        # exp_avg/exp_avg_sq for the rest
        slots=lambda kw, shape: (
            [("momentum_buffer", False)] if len(shape) == 2
            else [("exp_avg", False), ("exp_avg_sq", False)]),
        cls=oz.Muon,
        torch_cls=torch.optim.Muon,
        make_reference=MuonWithAdamW,
        reference_kwargs=reference_kwargs,
        reference_name="torch.optim 2.13 Muon + AdamW",
        numpy_reference=NumpyMuon,
        capabilities=ALL | {"decoupled_weight_decay", "cross_element"},
        # The group test's group holds the (5,) and (2, 3, 2) tensors, which
        # take the AdamW rule: its rate follows the group's learning_rate.
        # No weight_decay: the reference adapter gives a group's
        # weight_decay to both its Muon and its AdamW, ours to the Muon
        # rule only (`adamw_weight_decay` is the AdamW rule's, as in the
        # constructor); no momentum: it is the Muon rule's only.
        groups=[{"learning_rate": 0.02}],
        configs=[
            Config("default", {**_BASE, "learning_rate": 0.01}),
            Config("no_nesterov_rms", {
                **_BASE, "learning_rate": 0.01, "nesterov": False,
                "momentum": 0.8, "adjust_lr_fn": "match_rms_adamw",
                "ns_steps": 3}),
            Config("wd_adamw_hypers", {
                **_BASE, "learning_rate": 0.01, "weight_decay": 0.5,
                "adamw_weight_decay": 0.3, "adamw_beta_1": 0.8,
                "adamw_beta_2": 0.99, "adamw_epsilon": 1e-3,
                "adjust_lr_fn": "original"}),
            Config("adamw_lr_maximize", {
                **_BASE, "learning_rate": 0.01, "adamw_learning_rate": 0.02,
                "maximize": True, "ns_coefficients": (1.875, -1.25, 0.375),
                # the classical quintic (converges to U V^T)
                "epsilon": 1e-3}),
            Config("tiny", {**_BASE, "learning_rate": 0.01},
                   grad_scale=1e-6),
            # timm's named schedules and a list of triples: the oracle's
            # Newton-Schulz is timm 1.0.31's (see timm_newton_schulz); 3
            # steps of the 5-triple "quintic" (truncated), 4 steps of a
            # 2-triple list (its last triple repeated)
            Config("quintic_truncated", {
                **_BASE, "learning_rate": 0.01,
                "ns_coefficients": "quintic", "ns_steps": 3}),
            Config("schedule_list_repeated", {
                **_BASE, "learning_rate": 0.01, "ns_steps": 4,
                "ns_coefficients": [(4.0848, -6.8946, 2.9270),
                                    (1.875, -1.25, 0.375)]}),
        ],
        errors=[
            ErrorCase({"momentum": -0.5}, ValueError,
                      r"Argument `momentum` must be >= 0\. "
                      r"Received: momentum=-0\.5"),
            ErrorCase({"nesterov": 1}, TypeError,
                      r"Argument `nesterov` must be True or False"),
            ErrorCase({"ns_coefficients": (1.0, 2.0)}, ValueError,
                      r"Argument `ns_coefficients` must be a name of "
                      r"\['original', 'polar_express', 'polar_express_safer', "
                      r"'quintic'\], a tuple of 3 real numbers or a "
                      r"non-empty list of such tuples\. "
                      r"Received: ns_coefficients=\(1\.0, 2\.0\)"),
            ErrorCase({"ns_coefficients": "cubic"}, ValueError,
                      r"Argument `ns_coefficients` must be a name of .*"
                      r"Received: ns_coefficients='cubic'"),
            ErrorCase({"ns_coefficients": [(1.0, 2.0, 3.0), (1.0, 2.0)]},
                      ValueError,
                      r"Argument `ns_coefficients` must be a name of "),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0"),
            ErrorCase({"ns_steps": 100}, ValueError,
                      r"Argument `ns_steps` must be in \[0, 100\)"
                      r"\. Received: ns_steps=100"),
            ErrorCase({"ns_steps": 2.0}, TypeError,
                      r"Argument `ns_steps` must be an integer"),
            ErrorCase({"adjust_lr_fn": "sqrt"}, ValueError,
                      r"Argument `adjust_lr_fn` must be None, 'original' or "
                      r"'match_rms_adamw'\. Received: adjust_lr_fn='sqrt'"),
            ErrorCase({"ns_dtype": "float16"}, ValueError,
                      r"Argument `ns_dtype` must be 'bfloat16' or 'float32'"),
            ErrorCase({"exclude_embeddings": "yes"}, TypeError,
                      r"Argument `exclude_embeddings` must be True or False"),
            ErrorCase({"exclude_layers": "dense"}, TypeError,
                      r"Argument `exclude_layers` must be a list"),
            ErrorCase({"adamw_learning_rate": -1.0}, ValueError,
                      r"Argument `adamw_learning_rate` must be >= 0"),
            ErrorCase({"adamw_beta_1": 1.0}, ValueError,
                      r"Argument `adamw_beta_1` must be in \[0, 1\)\. "
                      r"Received: adamw_beta_1=1"),
            ErrorCase({"adamw_beta_2": -0.1}, ValueError,
                      r"Argument `adamw_beta_2` must be in \[0, 1\)"),
            ErrorCase({"adamw_epsilon": -1e-8}, ValueError,
                      r"Argument `adamw_epsilon` must be >= 0"),
            ErrorCase({"adamw_weight_decay": -1.0}, ValueError,
                      r"Argument `adamw_weight_decay` must be >= 0"),
        ],
    ),
]
