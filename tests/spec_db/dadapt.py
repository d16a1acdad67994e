"""Specs of the optimizers with one learned step size for all variables:
Prodigy against prodigyopt 1.1.2's ``Prodigy``, DAdaptAdam and DAdaptSGD
against dadaptation 3.2's ``DAdaptAdam`` and ``DAdaptSGD``.

Tolerance: the generic 1e-5 of the movement. The rule is max(1e-5, 2 x the
reference's own float32-vs-float64 gap); the references' gaps on the
configs below are 1.5e-7..2.0e-6 (measured, and checked to keep the rule at
1e-5, by tests/test_dadapt.py::test_generic_tolerance_is_the_rule_on_every_
config), so 1e-5 is the rule's value.

The configs start from a larger ``d0`` than the default 1e-6 where the
default would barely move the parameters in 60 steps of random gradients
(float32 resolution of the parameters against a tiny movement); the
default ``d0`` runs in the digits test (tests/test_dadapt.py).

The references have no ``maximize``: their oracle negates the gradients
before its ``step()`` (what ``maximize`` means). DAdaptAdam's ``layer_scale``
is a param-group key in the reference: the oracle puts it on its groups.
"""

import dadaptation
import numpy as np
import prodigyopt

import keras_optzoo as oz

try:
    from specs import Config, converter, ErrorCase, OptimizerSpec
    from reference.np_dadapt import NumpyDAdaptAdam
    from reference.np_dadapt import NumpyDAdaptSGD
    from reference.np_dadapt import NumpyProdigy
except ImportError:  # imported as tests.spec_db.dadapt
    from tests.specs import Config, converter, ErrorCase, OptimizerSpec
    from tests.reference.np_dadapt import NumpyDAdaptAdam
    from tests.reference.np_dadapt import NumpyDAdaptSGD
    from tests.reference.np_dadapt import NumpyProdigy


class _Maximized:
    """A reference optimizer that steps on the negated gradients."""

    def __init__(self, inner):
        self.inner = inner
        self.param_groups = inner.param_groups
        self.state = inner.state

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = -p.grad
        return self.inner.step()


class _NumpyAsTorch:
    """NumpyDAdaptSGD behind the reference's interface (``param_groups``
    with ``"lr"``, ``step()`` reading ``p.grad``), with one weight decay per
    parameter."""

    def __init__(self, groups, **kwargs):
        import torch

        self._torch = torch
        self.params = [p for g in groups for p in g["params"]]
        decay = kwargs.get("weight_decay", 0.0)
        mask = [g.get("weight_decay", decay) != 0.0
                for g in groups for _ in g["params"]]
        kwargs = {("learning_rate" if k == "lr" else k): v
                  for k, v in kwargs.items()}
        self.inner = NumpyDAdaptSGD(
            [p.detach().numpy() for p in self.params],
            weight_decay_mask=mask, **kwargs)
        self.param_groups = [{"params": self.params,
                              "lr": self.inner.learning_rate}]
        self.state = {}

    def step(self):
        self.inner.learning_rate = self.param_groups[0]["lr"]
        out = self.inner.step([p.grad.numpy() for p in self.params])
        with self._torch.no_grad():
            for p, value in zip(self.params, out):
                p.copy_(self._torch.as_tensor(np.asarray(value)))


def _per_parameter_decay(params, kwargs):
    """Groups that give parameters different weight decays."""
    decay = kwargs.get("weight_decay", 0.0)
    return bool(params) and isinstance(params[0], dict) and any(
        g.get("weight_decay", decay) != decay for g in params)


class _NoStepOnZeroDivision:
    """DAdaptSGD raises ZeroDivisionError where its step size is undefined
    (a first gradient of norm 0, as with all-zero, underflowing or
    overflowing gradients, or an ``s`` of norm 0), having changed none of
    the state it uses later (the ``g0_norm`` it stores is recomputed while
    ``k`` is 0). keras_optzoo's DAdaptSGD documents that such a step leaves
    everything unchanged: this adapter turns the exception into that."""

    def __init__(self, inner):
        self.inner = inner
        self.param_groups = inner.param_groups
        self.state = inner.state

    def step(self):
        try:
            return self.inner.step()
        except ZeroDivisionError:
            return None


def _maker(cls):
    def make(params, maximize=False, layer_scale=None, **kwargs):
        params = list(params)
        if cls is dadaptation.DAdaptSGD and _per_parameter_decay(params,
                                                                  kwargs):
            # DAdaptSGD applies its first group's weight decay to every
            # parameter: it cannot leave one out (what
            # exclude_from_weight_decay does here); that oracle is the
            # NumPy reference, checked equal to DAdaptSGD on every config
            # by test_trajectory_matches_torch_and_numpy
            opt = _NumpyAsTorch(params, **kwargs)
            return _Maximized(opt) if maximize else opt
        if layer_scale is not None:
            if params and isinstance(params[0], dict):
                params = [dict(g) for g in params]
                for group in params:
                    group.setdefault("layer_scale", layer_scale)
            else:
                params = [{"params": params, "layer_scale": layer_scale}]
        opt = cls(params, **kwargs)
        if cls is dadaptation.DAdaptSGD:
            opt = _NoStepOnZeroDivision(opt)
        return _Maximized(opt) if maximize else opt

    return make


def _bool_errors(*names):
    return [ErrorCase({name: 1}, TypeError,
                      rf"Argument `{name}` must be True or False")
            for name in names]


def _positive_errors(*names):
    return [ErrorCase({name: 0.0}, ValueError,
                      rf"Argument `{name}` must be > 0\. Received: {name}=0")
            for name in names]


_BETAS = [
    ErrorCase({"beta_1": 1.0}, ValueError,
              r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1"),
    ErrorCase({"beta_2": -0.1}, ValueError,
              r"Argument `beta_2` must be in \[0, 1\)\. "
              r"Received: beta_2=-0\.1"),
]


def _scalar(*names):
    return lambda kwargs: [(name, ()) for name in names]


SPECS = [
    OptimizerSpec(
        name="prodigy",
        cls=oz.Prodigy,
        torch_cls=prodigyopt.Prodigy,
        make_reference=_maker(prodigyopt.Prodigy),
        reference_kwargs=converter(renames={"beta_3": "beta3"},
                                   betas=(0.9, 0.999)),
        reference_name="prodigyopt 1.1.2 Prodigy",
        numpy_reference=NumpyProdigy,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                                "maximize"}),
        slots=lambda kw, shape: (
            [("step", True), ("s", False), ("p0", False)]
            + ([("exp_avg", False)] if kw.get("beta_1", 0.9) > 0 else [])
            + [("exp_avg_sq", False)]),
        extra_variables=_scalar("d", "d_max", "d_numerator", "k"),
        # one d for all groups: a group overrides what the reference reads
        # per group (weight decay, epsilon, d0, safeguard_warmup) or sets
        # the learning rate 0 (its tensors still move with the others' d)
        groups=[{"weight_decay": 0.1, "epsilon": 1e-4, "d0": 1e-3,
                 "safeguard_warmup": True},
                {"learning_rate": 0.0, "weight_decay": 0.05}],
        configs=[
            Config("d0", {"d0": 1e-2}),
            Config("bias_correction_safeguard", {
                "d0": 1e-2, "use_bias_correction": True,
                "safeguard_warmup": True}),
            Config("wd_coupled", {"d0": 1e-2, "weight_decay": 0.1,
                                  "decouple": False}),
            Config("wd_decoupled", {"d0": 1e-1, "weight_decay": 0.1}),
            Config("beta1_zero_growth", {
                "d0": 1e-2, "beta_1": 0.0, "beta_3": 0.9, "d_coef": 0.5,
                "growth_rate": 1.05}),
            Config("maximize", {"d0": 1e-2, "maximize": True,
                                "learning_rate": 0.5}),
            Config("tiny", {"d0": 1e-2}, grad_scale=1e-6),
        ],
        errors=_BETAS + [
            ErrorCase({"beta_3": 1.5}, ValueError,
                      r"Argument `beta_3` must be in \[0, 1\]\. "
                      r"Received: beta_3=1\.5"),
        ] + _positive_errors("epsilon", "d0", "d_coef", "growth_rate")
        + _bool_errors("decouple", "use_bias_correction",
                       "safeguard_warmup"),
    ),
    OptimizerSpec(
        name="dadaptadam",
        cls=oz.DAdaptAdam,
        torch_cls=dadaptation.DAdaptAdam,
        make_reference=_maker(dadaptation.DAdaptAdam),
        reference_kwargs=converter(betas=(0.9, 0.999)),
        reference_name="dadaptation 3.2 DAdaptAdam",
        numpy_reference=NumpyDAdaptAdam,
        capabilities=frozenset({"weight_decay", "decoupled_weight_decay",
                                "maximize"}),
        slots=lambda kw, shape: [("s", False), ("exp_avg", False),
                                 ("exp_avg_sq", False)],
        extra_variables=_scalar("d", "numerator_weighted", "k"),
        groups=[{"weight_decay": 0.1, "epsilon": 1e-4, "layer_scale": 2.0},
                {"learning_rate": 0.0, "layer_scale": 0.5}],
        configs=[
            Config("d0", {"d0": 1e-2}),
            # before the coupled-decay config: tests/test_numerics.py runs
            # 1000 steps of zero gradients with the first weight-decay
            # config, where coupled decay makes Adam's normalised steps
            # oscillate around 0 chaotically: the reference's own float32
            # run ends 5% of the movement from its float64 run there. Under
            # decoupled decay zero gradients move nothing (in both).
            Config("wd_decoupled_growth", {
                "d0": 1e-2, "weight_decay": 0.1, "decouple": True,
                "growth_rate": 1.1}),
            Config("wd_coupled_bias_correction", {
                "d0": 1e-2, "weight_decay": 0.1,
                "use_bias_correction": True}),
            Config("betas_eps_layer_scale", {
                "d0": 1e-2, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3,
                "layer_scale": 2.0}),
            Config("maximize", {"d0": 1e-2, "maximize": True,
                                "learning_rate": 0.5}),
            Config("tiny", {"d0": 1e-2}, grad_scale=1e-6),
        ],
        errors=_BETAS + [
            ErrorCase({"layer_scale": -1.0}, ValueError,
                      r"Argument `layer_scale` must be >= 0\. "
                      r"Received: layer_scale=-1"),
        ] + _positive_errors("epsilon", "d0", "growth_rate")
        + _bool_errors("decouple", "use_bias_correction"),
    ),
    OptimizerSpec(
        name="dadaptsgd",
        cls=oz.DAdaptSGD,
        torch_cls=dadaptation.DAdaptSGD,
        make_reference=_maker(dadaptation.DAdaptSGD),
        reference_kwargs=converter(),
        reference_name="dadaptation 3.2 DAdaptSGD",
        numpy_reference=NumpyDAdaptSGD,
        capabilities=frozenset({"weight_decay", "maximize"}),
        slots=lambda kw, shape: [("step", True), ("s", False),
                                 ("x0", False)],
        extra_variables=_scalar("d", "numerator_weighted", "g0_norm", "k"),
        # the reference reads every hyperparameter from its first group:
        # a group can only freeze its rate at 0
        groups=[{"learning_rate": 0.0}],
        configs=[
            Config("d0", {"d0": 0.5}),
            Config("momentum_wd", {"d0": 0.5, "momentum": 0.9,
                                   "weight_decay": 0.1}),
            Config("growth", {"d0": 0.1, "growth_rate": 1.1}),
            Config("maximize", {"d0": 0.5, "maximize": True,
                                "learning_rate": 0.5, "momentum": 0.5}),
        ],
        errors=[
            ErrorCase({"momentum": 1.0}, ValueError,
                      r"Argument `momentum` must be in \[0, 1\)\. "
                      r"Received: momentum=1"),
        ] + _positive_errors("d0", "growth_rate"),
    ),
]
