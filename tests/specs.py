"""One spec per optimizer: the database that drives every generic test.

A spec holds sample configs (each with an id that names what it exercises),
error inputs with the expected message, the two oracles (the NumPy reference
written from the equations, and the torch.optim class) and capabilities.
A meta-test fails when a registered optimizer has no spec here.
"""

import dataclasses
import importlib
import pkgutil

import torch

import keras_optzoo as oz

try:
    from reference.numpy_optimizers import REFERENCES
except ImportError:  # imported as tests.specs
    from tests.reference.numpy_optimizers import REFERENCES


@dataclasses.dataclass(frozen=True)
class Config:
    id: str
    kwargs: dict
    #: gradients are multiplied by this (1e-6 shows where ε is placed)
    grad_scale: float = 1.0
    #: initial parameters are multiplied by this (keeps float32 resolution
    #: small against the movement when the movement itself is tiny)
    param_scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class ErrorCase:
    kwargs: dict
    error: type
    match: str


@dataclasses.dataclass
class OptimizerSpec:
    """One optimizer's entry in the database.

    The reference oracle is a torch-style optimizer object (``param_groups``
    with an ``"lr"`` entry, ``step()`` reading ``p.grad``): torch.optim's
    class, another package's (timm, lion-pytorch, pytorch-optimizer,
    adabelief-pytorch) or an adapter around a JAX library (optax), built by
    ``make_reference(params, **reference_kwargs(kwargs))``.
    """

    name: str
    cls: type
    configs: list
    errors: list
    #: the reference implementation's class (torch.optim.X, timm's, ...)
    torch_cls: type = None
    #: "weight_decay" (coupled), "decoupled_weight_decay", "maximize";
    #: "cross_element": the update mixes the elements of a tensor (norms,
    #: factored moments, matrix iterations, blockwise 8-bit state), so a
    #: NaN or inf in one element spreads through the tensor, in the
    #: reference too
    capabilities: frozenset = frozenset()
    #: ``(params_or_groups, **kw) -> optimizer``; defaults to ``torch_cls``
    make_reference: object = None
    #: Keras-spelled kwargs -> the reference's kwargs; defaults to
    #: :func:`torch_kwargs`
    reference_kwargs: object = None
    #: shown in failure messages ("torch.optim", "timm", "optax", ...)
    reference_name: str = "torch.optim"
    #: the NumPy reference class; defaults to ``REFERENCES[name]``
    numpy_reference: type = None
    #: The saved slots of one parameter, written from the reference's state
    #: names (a file format, checked by tests/test_resume.py):
    #: ``slots(kwargs, shape) -> [(name, kind)]``, kind False for a slot
    #: shaped like the parameter, True for a 0-d slot, or a shape tuple
    slots: object = None
    #: Optimizer variables saved after the slots, a file format as
    #: ``slots`` (checked by tests/test_resume.py): ``extra_variables(kwargs)
    #: -> [(name, shape)]`` (Prodigy's optimizer-wide ``d``, the
    #: schedule-free optimizers' state vector of each param group); None:
    #: none
    extra_variables: object = None
    #: whether the multi-tensor path (torch backend) runs this optimizer;
    #: False where its update needs per-tensor reductions or matrix math
    multi_tensor: bool = True
    #: The param groups of the reference test with groups
    #: (tests/test_param_groups.py): a list of one or two dicts, each the
    #: hyperparameter overrides of one group (Keras spelling, keys of
    #: ``param_groups``) on top of ``configs[0]``; the other variables form
    #: the default group. None: :func:`default_groups` (twice the learning
    #: rate, weight decay switched, another beta_1 or momentum). Give it
    #: where the optimizer needs something else, with the reason.
    groups: list = None
    #: the trajectory tolerance of tests/test_optimizers.py: 1e-5, or
    #: max(1e-5, 2 x the reference's own float32-vs-float64 gap) measured
    #: and stated in the spec where that gap is larger (DESIGN.md)
    rtol: float = 1e-5
    #: How the trajectory tests compare a run with its oracles: None for
    #: :func:`harness.assert_trajectory_close` with ``rtol``, or a function
    #: ``(ours, ref, init, what)`` that raises AssertionError (the 8-bit
    #: optimizers' distribution criterion,
    #: :func:`harness.assert_distribution_close`, where a rounding
    #: difference may flip a quantised state code)
    compare: object = None
    #: Arguments under which the optimizer takes an external learning rate
    #: (a ``learning_rate`` among them), for the generic tests that set
    #: one; None where it always does. HFAdafactor's default computes its
    #: step size (``relative_step=True``) and rejects a rate.
    external_rate: dict = None
    #: Whether the fit-level tests on TF compile this optimizer's train
    #: step with XLA although it is not in ``MECHANISMS``
    #: (harness.fit_jit_compile): for an update whose plain ``tf.function``
    #: graph is not bit-reproducible from one trace to the next, so that a
    #: resumed run (a new trace) would differ in the last bit from the
    #: uninterrupted one. Say why in the spec.
    fit_xla_on_tf: bool = False

    @property
    def group_overrides(self):
        """``groups``, or the generic default where the spec has none."""
        if self.groups is not None:
            return [dict(group) for group in self.groups]
        return default_groups(self)

    @property
    def reference(self):
        if self.numpy_reference is not None:
            return self.numpy_reference
        return REFERENCES[self.name]

    def assert_close(self, ours, ref, init, what):
        """The trajectory check of this spec (``compare`` or ``rtol``)."""
        if self.compare is not None:
            return self.compare(ours, ref, init, what)
        import harness

        return harness.assert_trajectory_close(ours, ref, init,
                                               rtol=self.rtol, what=what)

    def config(self, config_id):
        return next(c for c in self.configs if c.id == config_id)


def default_groups(spec):
    """The generic ``groups`` of a spec: one group with twice the learning
    rate of ``configs[0]``, its weight decay switched (0.05 where the
    config has none, 0 where it has some; where the optimizer has weight
    decay) and another ``beta_1`` (0.6) or ``momentum`` (0.5, or 0.3 where
    the config sets one), whichever the optimizer has."""
    from keras_optzoo import param_groups

    kwargs = spec.configs[0].kwargs
    optimizer = spec.cls(**kwargs)
    names = param_groups.allowed_keys(optimizer)
    base_lr = kwargs.get("learning_rate",
                         optimizer.get_config()["learning_rate"])
    out = {"learning_rate": 2.0 * base_lr}
    if "weight_decay" in spec.capabilities and "weight_decay" in names:
        out["weight_decay"] = 0.0 if kwargs.get("weight_decay") else 0.05
    if "beta_1" in names:
        out["beta_1"] = 0.6
    elif "momentum" in names:
        out["momentum"] = 0.5 if not kwargs.get("momentum") else 0.3
    return [out]


# Errors every optimizer shares (the base class checks them).
COMMON_ERRORS = [
    # (">= 0", or "> 0" where the reference rejects 0: LazyAdam)
    ErrorCase({"learning_rate": -0.1}, ValueError,
              r"Argument `learning_rate` must be >=? 0\. "
              r"Received: learning_rate=-0\.1"),
    ErrorCase({"learning_rate": "fast"}, TypeError,
              r"Argument `learning_rate` must be a real number"),
    ErrorCase({"weight_decay": -1}, ValueError,
              r"Argument `weight_decay` must be >= 0\. "
              r"Received: weight_decay=-1"),
    ErrorCase({"maximize": "yes"}, TypeError,
              r"Argument `maximize` must be True or False\. "
              r"Received: maximize='yes'"),
    ErrorCase({"learning_rat": 0.1}, ValueError,
              r"Argument\(s\) not recognized: \{'learning_rat': 0\.1\}"),
    ErrorCase({"clipnorm": 1.0, "clipvalue": 1.0}, ValueError,
              r"Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"),
    ErrorCase({"gradient_accumulation_steps": 1}, ValueError,
              r"`gradient_accumulation_steps` must be an integer >= 2"),
]

BETA_ERRORS = [
    ErrorCase({"beta_1": 1.5}, ValueError,
              r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1\.5"),
    ErrorCase({"beta_1": 1.0}, ValueError,
              r"Argument `beta_1` must be in \[0, 1\)\. Received: beta_1=1"),
    ErrorCase({"beta_2": -0.1}, ValueError,
              r"Argument `beta_2` must be in \[0, 1\)\. "
              r"Received: beta_2=-0\.1"),
    ErrorCase({"epsilon": -1e-8}, ValueError,
              r"Argument `epsilon` must be >= 0\. Received: epsilon=-1e-08"),
]
AMSGRAD_ERROR = ErrorCase({"amsgrad": 1}, TypeError,
                          r"Argument `amsgrad` must be True or False")

ALL = frozenset({"weight_decay", "maximize"})

SPECS = [
    OptimizerSpec(
        name="sgd",
        cls=oz.SGD,
        torch_cls=torch.optim.SGD,
        capabilities=ALL,
        # two groups: momentum in one, Nesterov momentum in the other, over
        # a default group without momentum
        groups=[{"learning_rate": 0.1, "weight_decay": 0.05, "momentum": 0.5},
                {"momentum": 0.9, "nesterov": True}],
        configs=[
            Config("plain", {"learning_rate": 0.05}),
            Config("momentum", {"learning_rate": 0.05, "momentum": 0.9}),
            Config("dampening", {"learning_rate": 0.05, "momentum": 0.9,
                                 "dampening": 0.3}),
            Config("nesterov", {"learning_rate": 0.05, "momentum": 0.9,
                                "nesterov": True}),
            Config("wd", {"learning_rate": 0.05, "momentum": 0.9,
                          "weight_decay": 0.1}),
            Config("maximize", {"learning_rate": 0.05, "momentum": 0.5,
                                "maximize": True}),
            Config("tiny", {"learning_rate": 0.05, "momentum": 0.9},
                   grad_scale=1e-6, param_scale=1e-6),
        ],
        errors=[
            ErrorCase({"momentum": -0.5}, ValueError,
                      r"Argument `momentum` must be >= 0\. "
                      r"Received: momentum=-0\.5"),
            ErrorCase({"dampening": 2.0}, ValueError,
                      r"Argument `dampening` must be in \[0, 1\]\. "
                      r"Received: dampening=2"),
            ErrorCase({"nesterov": True}, ValueError,
                      r"`nesterov=True` requires `momentum` > 0 and "
                      r"`dampening` = 0\. Received: momentum=0\.0"),
            ErrorCase({"nesterov": True, "momentum": 0.9, "dampening": 0.1},
                      ValueError, r"Received: momentum=0\.9, dampening=0\.1"),
            ErrorCase({"momentum": "0.9"}, TypeError,
                      r"Argument `momentum` must be a real number or a "
                      r"keras\.optimizers\.schedules\.LearningRateSchedule"),
        ],
    ),
    OptimizerSpec(
        name="adagrad",
        cls=oz.Adagrad,
        torch_cls=torch.optim.Adagrad,
        capabilities=ALL,
        configs=[
            Config("default", {"learning_rate": 0.1}),
            Config("lr_decay_init", {"learning_rate": 0.1, "lr_decay": 0.05,
                                     "initial_accumulator_value": 0.5}),
            Config("wd", {"learning_rate": 0.1, "weight_decay": 0.1}),
            Config("maximize", {"learning_rate": 0.1, "maximize": True}),
            Config("eps", {"learning_rate": 0.1, "epsilon": 1e-2}),
            Config("tiny", {"learning_rate": 0.1}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"lr_decay": -1.0}, ValueError,
                      r"Argument `lr_decay` must be >= 0\. "
                      r"Received: lr_decay=-1"),
            ErrorCase({"initial_accumulator_value": -0.1}, ValueError,
                      r"Argument `initial_accumulator_value` must be >= 0"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0\. Received: epsilon=-1"),
        ],
    ),
    OptimizerSpec(
        name="rmsprop",
        cls=oz.RMSprop,
        torch_cls=torch.optim.RMSprop,
        capabilities=ALL,
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("centered", {"learning_rate": 0.01, "centered": True}),
            Config("momentum", {"learning_rate": 0.01, "momentum": 0.9}),
            Config("centered_momentum_wd", {
                "learning_rate": 0.01, "centered": True, "momentum": 0.5,
                "weight_decay": 0.1, "rho": 0.9}),
            Config("maximize", {"learning_rate": 0.01, "maximize": True}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=[
            ErrorCase({"rho": 1.0}, ValueError,
                      r"Argument `rho` must be in \[0, 1\)\. Received: rho=1"),
            ErrorCase({"momentum": -1.0}, ValueError,
                      r"Argument `momentum` must be >= 0"),
            ErrorCase({"centered": None}, TypeError,
                      r"Argument `centered` must be True or False"),
        ],
    ),
    OptimizerSpec(
        name="adadelta",
        cls=oz.Adadelta,
        torch_cls=torch.optim.Adadelta,
        capabilities=ALL,
        configs=[
            # Adadelta's first steps are ~sqrt(ε) long: small initial
            # parameters keep float32's resolution below the tolerance.
            Config("default", {}, param_scale=0.01),
            Config("rho_eps", {"rho": 0.5, "epsilon": 1e-4}, param_scale=0.01),
            Config("wd", {"weight_decay": 0.1}, param_scale=0.01),
            Config("maximize", {"maximize": True, "learning_rate": 0.5},
                   param_scale=0.01),
            Config("tiny", {}, grad_scale=1e-6, param_scale=1e-6),
        ],
        errors=[
            ErrorCase({"rho": 1.5}, ValueError,
                      r"Argument `rho` must be in \[0, 1\]\. Received: rho=1\.5"),
            ErrorCase({"epsilon": -1.0}, ValueError,
                      r"Argument `epsilon` must be >= 0"),
        ],
    ),
    OptimizerSpec(
        name="adam",
        cls=oz.Adam,
        torch_cls=torch.optim.Adam,
        capabilities=ALL | {"decoupled_weight_decay"},
        # two groups: the second one switches the update's branches
        # (AMSGrad slots for its variables only, decoupled decay)
        groups=[{"learning_rate": 0.02, "weight_decay": 0.05, "beta_1": 0.6},
                {"amsgrad": True, "beta_2": 0.99, "weight_decay": 0.1,
                 "decoupled_weight_decay": True}],
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("amsgrad", {"learning_rate": 0.01, "amsgrad": True}),
            Config("wd_coupled", {"learning_rate": 0.01, "weight_decay": 0.1}),
            Config("wd_decoupled", {"learning_rate": 0.01, "weight_decay": 0.1,
                                    "decoupled_weight_decay": True}),
            Config("maximize_amsgrad", {"learning_rate": 0.01,
                                        "maximize": True, "amsgrad": True}),
            Config("betas_eps", {"learning_rate": 0.01, "beta_1": 0.5,
                                 "beta_2": 0.9, "epsilon": 1e-3}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=BETA_ERRORS + [
            AMSGRAD_ERROR,
            ErrorCase({"decoupled_weight_decay": "no"}, TypeError,
                      r"Argument `decoupled_weight_decay` must be True or "
                      r"False"),
        ],
    ),
    OptimizerSpec(
        name="adamw",
        cls=oz.AdamW,
        torch_cls=torch.optim.AdamW,
        capabilities=ALL | {"decoupled_weight_decay"},
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("amsgrad", {"learning_rate": 0.01, "amsgrad": True}),
            Config("wd", {"learning_rate": 0.01, "weight_decay": 0.5}),
            Config("maximize", {"learning_rate": 0.01, "maximize": True}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=BETA_ERRORS + [
            AMSGRAD_ERROR,
            ErrorCase({"decoupled_weight_decay": False}, ValueError,
                      r"Argument `decoupled_weight_decay` is not accepted by "
                      r"AdamW.*Received: decoupled_weight_decay=False"),
        ],
    ),
    OptimizerSpec(
        name="nadam",
        cls=oz.NAdam,
        torch_cls=torch.optim.NAdam,
        capabilities=ALL | {"decoupled_weight_decay"},
        configs=[
            Config("default", {"learning_rate": 0.01}),
            Config("momentum_decay", {"learning_rate": 0.01,
                                      "momentum_decay": 0.1}),
            Config("wd_coupled", {"learning_rate": 0.01, "weight_decay": 0.1}),
            # float32 rounds the per-step factor (1 - lr*wd) the same way in
            # torch and here; a longer path keeps that below the tolerance
            # against the float64 reference.
            Config("wd_decoupled", {"learning_rate": 0.03, "weight_decay": 0.1,
                                    "decoupled_weight_decay": True},
                   param_scale=0.5),
            Config("maximize", {"learning_rate": 0.01, "maximize": True}),
            Config("tiny", {"learning_rate": 0.01}, grad_scale=1e-6),
        ],
        errors=BETA_ERRORS + [
            ErrorCase({"momentum_decay": -1}, ValueError,
                      r"Argument `momentum_decay` must be >= 0"),
        ],
    ),
]


#: the spelling every torch-style reference shares
_TORCH_NAMES = {"learning_rate": "lr", "epsilon": "eps"}


def converter(renames=None, betas=None, drop=(), *, betas_always=True,
              beta_prefix="beta_", betas_name="betas", defaults=None):
    """A ``reference_kwargs`` function: Keras-spelled arguments -> a
    torch-style reference's.

    ``learning_rate`` -> ``lr`` and ``epsilon`` -> ``eps`` always, then
    ``renames`` (``{"our_name": "their_name"}``, over those two). ``betas``:
    the reference's default tuple, filled from ``beta_prefix`` + 1, 2, ...
    (``beta_1``...) and passed as ``betas_name``; always, or with
    ``betas_always=False`` only when one of those arguments is given; None:
    no tuple. ``drop``: arguments the reference has no counterpart for.
    ``defaults``: reference arguments passed unless the kwargs give them."""
    names = {**_TORCH_NAMES, **(renames or {})}
    positions = {f"{beta_prefix}{i + 1}": i for i in range(len(betas or ()))}
    drop = frozenset(drop)

    def convert(kwargs):
        out = dict(defaults or {})
        tuple_ = list(betas or ())
        given = False
        for key, value in kwargs.items():
            if key in drop:
                continue
            if key in positions:
                tuple_[positions[key]] = value
                given = True
            else:
                out[names.get(key, key)] = value
        if betas is not None and (betas_always or given):
            out[betas_name] = tuple(tuple_)
        return out

    return convert


def _discover():
    """Specs of the second-wave optimizers: one module each in
    ``tests/spec_db``, each defining ``SPECS``."""
    try:
        package = importlib.import_module("spec_db")
    except ImportError:  # imported as tests.specs
        package = importlib.import_module("tests.spec_db")
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__),
                       key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found.extend(module.SPECS)
    return found


SPECS.extend(_discover())
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


_TORCH_KWARGS = converter(betas=(0.9, 0.999), betas_always=False)
_RMSPROP_KWARGS = converter(renames={"rho": "alpha"}, betas=(0.9, 0.999),
                            betas_always=False)


def torch_kwargs(spec, kwargs):
    """Keras-spelled arguments -> torch.optim's names."""
    if spec.name == "rmsprop":
        return _RMSPROP_KWARGS(kwargs)
    return _TORCH_KWARGS(kwargs)


def make_torch(spec, params, kwargs, decay_mask=None):
    """The reference optimizer (torch.optim's or the spec's named one);
    ``decay_mask`` False -> a param group with weight decay 0."""
    convert = spec.reference_kwargs or (lambda kw: torch_kwargs(spec, kw))
    kw = convert(kwargs)
    make = spec.make_reference or spec.torch_cls
    if decay_mask is None:
        return make(params, **kw)
    groups = [
        {"params": [p], **({} if keep else {"weight_decay": 0.0})}
        for p, keep in zip(params, decay_mask)
    ]
    return make(groups, **kw)


#: One optimizer per mechanism of the base class, for the tests of Keras
#: integration that an algorithm's update rule does not enter (saving before
#: training, ``optimizer.learning_rate``, EMA swaps, sparse gradients, loss
#: scaling, compile-once, multi-device, resume through every file path).
#: Those paths differ between optimizers only in how the optimizer's
#: variables are declared and written, so the list covers each way: plain
#: slots (sgd, adam), optional slots (rmsprop), per-variable scalar slots
#: (nadam, asgd, novograd), slots with shapes of their own (adafactor), a
#: second update rule and matrix math (muon), statistics over all gradients
#: (lamb), per-tensor projections (adamp), an overridden update_step
#: that reads sparse rows (lazyadam), optimizer-wide state written once
#: per step from sums over all variables and slots (prodigy), and
#: train/eval modes with float64 bookkeeping in per-variable limb slots
#: and a z taken from the parameters at the first step
#: (schedulefree_adamw). Every optimizer still gets the algorithm's tests
#: (trajectories eager and compiled, config, bad input, fit + .keras
#: save/load resume, numerics, mixed precision). A new optimizer that adds
#: a new mechanism belongs here. Keeping the CI run of ~45 optimizers on
#: three backends under 40 minutes depends on this list.
MECHANISMS = ("sgd", "adam", "rmsprop", "nadam", "asgd", "novograd",
              "adafactor", "muon", "lamb", "adamp", "lazyadam", "prodigy",
              "schedulefree_adamw")


def base_feature_specs():
    """The specs a test of a base-class feature (param groups, weight-decay
    exclusion, clipping, gradient transforms) runs on this backend: every
    spec on torch, :data:`MECHANISMS` on JAX and TensorFlow.

    Why the matrix is thinned there (the CI budget: each of these costs an
    eager run of seconds or an XLA compile per optimizer on those two
    backends): the feature is Python in the base class, the same at trace
    time for every optimizer, and what could go wrong per optimizer (an
    optimizer reading a hyperparameter past the group override, decaying
    an excluded variable) goes wrong on every backend alike, so torch's run
    of every optimizer finds it. What is backend-specific is the keras.ops
    the features compile to, the same for every optimizer of a mechanism,
    which :data:`MECHANISMS` covers; every optimizer's own math runs
    compiled on JAX and TF in the trajectory tests.
    """
    if harness_backend() == "torch":
        return list(SPECS)
    return mechanism_specs()


def harness_backend():
    import keras

    return keras.backend.backend()


def mechanism_specs():
    return [SPECS_BY_NAME[name] for name in MECHANISMS]


def mechanism_configs():
    """(spec, default config) for each of :data:`MECHANISMS`."""
    import pytest

    return [pytest.param(spec, spec.configs[0], id=spec.name)
            for spec in mechanism_specs()]


def alternating(spec, values):
    """One of ``values`` per optimizer, in turn along the database, so each
    value is exercised by a third (a half) of the optimizers and each
    optimizer by one value: for choices that are the base class's or
    Keras's (clipping mode, mixed-precision policy, half dtype), not the
    algorithm's."""
    return values[SPECS.index(spec) % len(values)]


def all_configs():
    """(spec, config) pairs with readable ids, for parametrisation."""
    import pytest

    return [
        pytest.param(spec, config, id=f"{spec.name}-{config.id}")
        for spec in SPECS
        for config in spec.configs
    ]


def configs_with(extra):
    """Every spec's first config, plus ``extra[spec.name]`` where given
    (the config with the most optimizer state, say), for parametrisation."""
    import pytest

    out = []
    for spec in SPECS:
        ids = [spec.configs[0].id] + ([extra[spec.name]]
                                      if spec.name in extra else [])
        out += [pytest.param(spec, spec.config(i), id=f"{spec.name}-{i}")
                for i in ids]
    return out


def default_configs():
    import pytest

    return [pytest.param(spec, spec.configs[0], id=spec.name)
            for spec in SPECS]
