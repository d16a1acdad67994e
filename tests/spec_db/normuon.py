"""Spec of NorMuon: pytorch-optimizer 4.1.0's ``NorMuon`` is the oracle,
its params split into a ``use_muon=True`` group (params of 2+ dimensions,
what our routing gives plain arrays) and a ``use_muon=False`` group (the
others), by :class:`NorMuonGroups`.

``ns_dtype="float32"``: the reference always runs Newton-Schulz in
bfloat16 (``zero_power_via_newton_schulz_5``'s ``dtype`` argument, not
exposed); the float32 oracle calls the same function with
``dtype=float32`` (float64 params: float64), swapped in for the names the
reference's single-tensor and foreach paths call. The generic configs use
float32 (the 1e-5 tolerance is float32's).
"""

import contextlib
import functools

import torch
import pytorch_optimizer
import pytorch_optimizer.optimizer.muon.base as pto_muon_base
import pytorch_optimizer.optimizer.muon.normuon as pto_normuon

import keras_optzoo as oz

try:
    from specs import ALL, Config, converter, ErrorCase, OptimizerSpec
    from reference.np_normuon import NumpyNorMuon
except ImportError:  # imported as tests.spec_db.normuon
    from tests.specs import ALL, Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_normuon import NumpyNorMuon

_NS = pto_normuon.zero_power_via_newton_schulz_5
assert pto_muon_base.zero_power_via_newton_schulz_5 is _NS


def _ns_float32(g, **kwargs):
    kwargs["dtype"] = torch.promote_types(g.dtype, torch.float32)
    return _NS(g, **kwargs)


@contextlib.contextmanager
def newton_schulz_dtype(ns_dtype):
    if ns_dtype == "bfloat16":
        yield
        return
    pto_normuon.zero_power_via_newton_schulz_5 = _ns_float32
    pto_muon_base.zero_power_via_newton_schulz_5 = _ns_float32
    try:
        yield
    finally:
        pto_normuon.zero_power_via_newton_schulz_5 = _NS
        pto_muon_base.zero_power_via_newton_schulz_5 = _NS


class NorMuonGroups:
    """pytorch_optimizer.NorMuon with each given group split into its
    ``use_muon=True`` part (2+ dimensions) and ``use_muon=False`` part.
    ``param_groups`` lists the Muon groups, plus the AdamW ones when
    ``adamw_lr`` is None (then they take ``lr``, as ours follows
    ``learning_rate``), so that setting ``group["lr"]`` acts as on ours.
    A group's ``weight_decay`` override (0: excluded from decay) applies
    to both parts, as ``exclude_from_weight_decay`` does on ours."""

    def __init__(self, params, lr=2e-2, adamw_lr=3e-4, ns_dtype="bfloat16",
                 weight_decay=0.0, **kwargs):
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        groups, follow = [], []
        for group in params:
            extra = {k: v for k, v in group.items() if k != "params"}
            muon = [p for p in group["params"] if p.ndim >= 2]
            rest = [p for p in group["params"] if p.ndim < 2]
            if muon:
                groups.append({"params": muon, "use_muon": True,
                               "weight_decay": weight_decay, **extra})
            if rest:
                extra_rest = dict(extra)
                if adamw_lr is not None:
                    extra_rest.pop("lr", None)
                groups.append({"params": rest, "use_muon": False,
                               **({"lr": lr} if adamw_lr is None else {}),
                               **extra_rest})
        self.ns_dtype = ns_dtype
        self.opt = pytorch_optimizer.NorMuon(
            groups, lr=lr, adamw_lr=3e-4 if adamw_lr is None else adamw_lr,
            **kwargs)
        self.param_groups = [g for g in self.opt.param_groups
                             if g["use_muon"] or adamw_lr is None]

    def zero_grad(self):
        self.opt.zero_grad()

    def step(self):
        with newton_schulz_dtype(self.ns_dtype):
            self.opt.step()


reference_kwargs = converter(
    renames={"adamw_learning_rate": "adamw_lr", "adamw_epsilon": "adamw_eps",
             "adamw_weight_decay": "adamw_wd", "beta_2": "beta2",
             "ns_coefficients": "ns_coeffs"},
    betas=(0.9, 0.95), beta_prefix="adamw_beta_", betas_name="adamw_betas",
    drop=("exclude_embeddings", "exclude_layers"))

_BASE = {"ns_dtype": "float32", "exclude_embeddings": False}

SPECS = [
    OptimizerSpec(
        name="normuon",
        slots=lambda kw, shape: (
            [("momentum_buffer", False),
             ("second_momentum_buffer", (shape[0], 1))]
            if len(shape) >= 2
            else [("exp_avg", False), ("exp_avg_sq", False)]),
        cls=oz.NorMuon,
        torch_cls=pytorch_optimizer.NorMuon,
        make_reference=NorMuonGroups,
        reference_kwargs=reference_kwargs,
        reference_name="pytorch-optimizer 4.1.0 NorMuon",
        numpy_reference=NumpyNorMuon,
        capabilities=ALL | {"decoupled_weight_decay", "cross_element"},
        # the group holds the 1-D and 3-D test tensors: as for Muon, its
        # learning rate reaches the AdamW rule only when that follows
        # learning_rate (configs[0] has adamw_learning_rate=None)
        groups=[{"learning_rate": 0.04}],
        configs=[
            Config("default_follow_lr", {
                **_BASE, "learning_rate": 0.02,
                "adamw_learning_rate": None}),
            Config("fixed_adamw_lr_wd", {
                **_BASE, "learning_rate": 0.02, "weight_decay": 0.3,
                "adamw_learning_rate": 0.01, "adamw_weight_decay": 0.2,
                "adamw_beta_1": 0.8, "adamw_beta_2": 0.99,
                "adamw_epsilon": 1e-3}),
            Config("adjusted_no_nesterov", {
                **_BASE, "learning_rate": 0.02, "use_adjusted_lr": True,
                "nesterov": False, "momentum": 0.8, "beta_2": 0.9,
                "ns_steps": 3, "ns_coefficients": "quintic"}),
            Config("match_rms_maximize", {
                **_BASE, "learning_rate": 0.02, "update_scale": "match_rms",
                "maximize": True, "epsilon": 1e-3,
                "ns_coefficients": [(4.0848, -6.8946, 2.9270),
                                    (1.875, -1.25, 0.375)]}),
            Config("tiny", {**_BASE, "learning_rate": 0.02,
                            "adamw_learning_rate": None}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"momentum": 1.0}, ValueError,
                      r"Argument `momentum` must be in \[0, 1\)"),
            ErrorCase({"beta_2": -0.1}, ValueError,
                      r"Argument `beta_2` must be in \[0, 1\)"),
            ErrorCase({"ns_steps": 0}, ValueError,
                      r"Argument `ns_steps` must be >= 1\. "
                      r"Received: ns_steps=0"),
            ErrorCase({"ns_coefficients": "cubic"}, ValueError,
                      r"Argument `ns_coefficients` must be a name of"),
            ErrorCase({"update_scale": "rms"}, ValueError,
                      r"Argument `update_scale` must be 'preserve_norm' or "
                      r"'match_rms'\. Received: update_scale='rms'"),
            ErrorCase({"use_adjusted_lr": 1}, TypeError,
                      r"Argument `use_adjusted_lr` must be True or False"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0"),
            ErrorCase({"ns_dtype": "float16"}, ValueError,
                      r"Argument `ns_dtype` must be 'bfloat16' or 'float32'"),
            ErrorCase({"exclude_layers": "head"}, TypeError,
                      r"Argument `exclude_layers` must be a list"),
            ErrorCase({"adamw_learning_rate": -1.0}, ValueError,
                      r"Argument `adamw_learning_rate` must be >= 0"),
            ErrorCase({"adamw_beta_1": 1.0}, ValueError,
                      r"Argument `adamw_beta_1` must be in \[0, 1\)"),
            ErrorCase({"adamw_epsilon": -1.0}, ValueError,
                      r"Argument `adamw_epsilon` must be >= 0"),
            ErrorCase({"adamw_weight_decay": -1.0}, ValueError,
                      r"Argument `adamw_weight_decay` must be >= 0"),
        ],
    ),
]
