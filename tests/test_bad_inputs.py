"""Bad inputs are rejected with a message naming the argument, the allowed
range and the received value (Keras's wording).

New cases only: the ones in tests/specs.py (run by tests/test_optimizers.py)
are not repeated here. Backend-independent (construction-time checks), so
every case runs on every backend.
"""

import math

import numpy as np
import pytest

import keras

import keras_optzoo as oz

S = oz.schedules
NAN = float("nan")
INF = float("inf")


def C(factory, error, match, id):
    return pytest.param(factory, error, match, id=id)


def _range(name, text, received):
    """Regex: Argument `name` must be <text>. Received: name=<received>"""
    return (rf"Argument `{name}` must be (a finite number )?{text}\. "
            rf"Received: {name}={received}")


def _type(name, received):
    return (rf"Argument `{name}` must be .*\. Received: {name}={received}")


OPTIMIZER_CASES = [
    # --- NaN / inf where a finite float is expected
    C(lambda: oz.SGD(learning_rate=NAN), ValueError,
      _range("learning_rate", ">= 0", "nan"), "sgd-lr-nan"),
    C(lambda: oz.SGD(learning_rate=INF), ValueError,
      _range("learning_rate", ">= 0", "inf"), "sgd-lr-inf"),
    C(lambda: oz.Adam(learning_rate=np.float32("nan")), ValueError,
      _range("learning_rate", ">= 0", "nan"), "adam-lr-np-nan"),
    C(lambda: oz.Adadelta(learning_rate=-INF), ValueError,
      _range("learning_rate", ">= 0", "-inf"), "adadelta-lr-minus-inf"),
    C(lambda: oz.SGD(momentum=NAN), ValueError,
      _range("momentum", ">= 0", "nan"), "sgd-momentum-nan"),
    C(lambda: oz.SGD(momentum=INF), ValueError,
      _range("momentum", ">= 0", "inf"), "sgd-momentum-inf"),
    C(lambda: oz.SGD(momentum=0.9, dampening=NAN), ValueError,
      _range("dampening", r"in \[0, 1\]", "nan"), "sgd-dampening-nan"),
    C(lambda: oz.SGD(momentum=0.9, dampening=-0.1), ValueError,
      _range("dampening", r"in \[0, 1\]", r"-0\.1"), "sgd-dampening-neg"),
    C(lambda: oz.SGD(weight_decay=INF), ValueError,
      _range("weight_decay", ">= 0", "inf"), "sgd-wd-inf"),
    C(lambda: oz.AdamW(weight_decay=NAN), ValueError,
      _range("weight_decay", ">= 0", "nan"), "adamw-wd-nan"),
    C(lambda: oz.Adagrad(lr_decay=INF), ValueError,
      _range("lr_decay", ">= 0", "inf"), "adagrad-lr-decay-inf"),
    C(lambda: oz.Adagrad(lr_decay=NAN), ValueError,
      _range("lr_decay", ">= 0", "nan"), "adagrad-lr-decay-nan"),
    C(lambda: oz.Adagrad(initial_accumulator_value=INF), ValueError,
      _range("initial_accumulator_value", ">= 0", "inf"), "adagrad-iav-inf"),
    C(lambda: oz.Adagrad(epsilon=NAN), ValueError,
      _range("epsilon", ">= 0", "nan"), "adagrad-eps-nan"),
    C(lambda: oz.Adam(epsilon=INF), ValueError,
      _range("epsilon", ">= 0", "inf"), "adam-eps-inf"),
    C(lambda: oz.RMSprop(rho=NAN), ValueError,
      _range("rho", r"in \[0, 1\)", "nan"), "rmsprop-rho-nan"),
    C(lambda: oz.RMSprop(rho=-0.1), ValueError,
      _range("rho", r"in \[0, 1\)", r"-0\.1"), "rmsprop-rho-neg"),
    C(lambda: oz.RMSprop(momentum=INF), ValueError,
      _range("momentum", ">= 0", "inf"), "rmsprop-momentum-inf"),
    C(lambda: oz.Adadelta(rho=NAN), ValueError,
      _range("rho", r"in \[0, 1\]", "nan"), "adadelta-rho-nan"),
    C(lambda: oz.Adadelta(rho=-1.0), ValueError,
      _range("rho", r"in \[0, 1\]", "-1"), "adadelta-rho-neg"),
    C(lambda: oz.Adam(beta_1=NAN), ValueError,
      _range("beta_1", r"in \[0, 1\)", "nan"), "adam-beta1-nan"),
    C(lambda: oz.Adam(beta_2=1.0), ValueError,
      _range("beta_2", r"in \[0, 1\)", "1"), "adam-beta2-one"),
    C(lambda: oz.AdamW(beta_2=INF), ValueError,
      _range("beta_2", r"in \[0, 1\)", "inf"), "adamw-beta2-inf"),
    C(lambda: oz.NAdam(beta_1=-0.5), ValueError,
      _range("beta_1", r"in \[0, 1\)", r"-0\.5"), "nadam-beta1-neg"),
    C(lambda: oz.NAdam(momentum_decay=NAN), ValueError,
      _range("momentum_decay", ">= 0", "nan"), "nadam-md-nan"),
    C(lambda: oz.NAdam(momentum_decay=INF), ValueError,
      _range("momentum_decay", ">= 0", "inf"), "nadam-md-inf"),
    # --- bools where a float is expected, strings, containers, None
    C(lambda: oz.SGD(learning_rate=True), TypeError,
      _type("learning_rate", "True"), "sgd-lr-bool"),
    # None is a missing value: ValueError, as Keras raises (issue 9)
    C(lambda: oz.Adam(learning_rate=None), ValueError,
      _type("learning_rate", "None"), "adam-lr-none"),
    C(lambda: oz.AdamW(weight_decay=None), ValueError,
      _type("weight_decay", "None"), "adamw-wd-none"),
    C(lambda: oz.SGD(momentum=None), ValueError,
      _type("momentum", "None"), "sgd-momentum-none"),
    C(lambda: oz.Adam(learning_rate=np.array([0.1, 0.2])), TypeError,
      _type("learning_rate", r"array\("), "adam-lr-array"),
    C(lambda: oz.SGD(momentum=True), TypeError,
      _type("momentum", r"True \(of type bool\)"), "sgd-momentum-bool"),
    C(lambda: oz.SGD(weight_decay=True), TypeError,
      _type("weight_decay", r"True \(of type bool\)"), "sgd-wd-bool"),
    C(lambda: oz.SGD(weight_decay="0.1"), TypeError,
      _type("weight_decay", r"'0\.1' \(of type str\)"), "sgd-wd-str"),
    C(lambda: oz.RMSprop(rho=True), TypeError,
      _type("rho", r"True \(of type bool\)"), "rmsprop-rho-bool"),
    C(lambda: oz.RMSprop(epsilon="1e-8"), TypeError,
      _type("epsilon", r"'1e-8' \(of type str\)"), "rmsprop-eps-str"),
    C(lambda: oz.Adadelta(epsilon=True), TypeError,
      _type("epsilon", r"True \(of type bool\)"), "adadelta-eps-bool"),
    C(lambda: oz.Adagrad(initial_accumulator_value="1"), TypeError,
      _type("initial_accumulator_value", r"'1' \(of type str\)"),
      "adagrad-iav-str"),
    C(lambda: oz.Adam(beta_2=True), TypeError,
      _type("beta_2", r"True \(of type bool\)"), "adam-beta2-bool"),
    C(lambda: oz.Adam(beta_1=(0.9, 0.99)), TypeError,
      _type("beta_1", r"\(0\.9, 0\.99\) \(of type tuple\)"),
      "adam-beta1-tuple"),
    C(lambda: oz.NAdam(momentum_decay="4e-3"), TypeError,
      _type("momentum_decay", r"'4e-3' \(of type str\)"), "nadam-md-str"),
    # --- flags that must be real bools (1/0/"true" are not accepted)
    C(lambda: oz.SGD(momentum=0.9, nesterov=1), TypeError,
      r"Argument `nesterov` must be True or False\. Received: nesterov=1",
      "sgd-nesterov-int"),
    C(lambda: oz.SGD(momentum=0.9, nesterov="yes"), TypeError,
      r"Argument `nesterov` must be True or False\. "
      r"Received: nesterov='yes'", "sgd-nesterov-str"),
    C(lambda: oz.RMSprop(centered=0), TypeError,
      r"Argument `centered` must be True or False\. Received: centered=0",
      "rmsprop-centered-int"),
    C(lambda: oz.Adam(amsgrad="true"), TypeError,
      r"Argument `amsgrad` must be True or False\. Received: amsgrad='true'",
      "adam-amsgrad-str"),
    C(lambda: oz.AdamW(maximize=0), TypeError,
      r"Argument `maximize` must be True or False\. Received: maximize=0",
      "adamw-maximize-int"),
    C(lambda: oz.Adam(shard_state=1), TypeError,
      r"Argument `shard_state` must be True or False\. Received: "
      r"shard_state=1", "adam-shard-state-int"),
    C(lambda: oz.NAdam(decoupled_weight_decay="yes"), TypeError,
      r"Argument `decoupled_weight_decay` must be True or False\. "
      r"Received: decoupled_weight_decay='yes'", "nadam-dwd-str"),
    # --- combinations
    C(lambda: oz.SGD(momentum=0.0, nesterov=True, dampening=0.0), ValueError,
      r"`nesterov=True` requires `momentum` > 0 and `dampening` = 0\. "
      r"Received: momentum=0\.0, dampening=0\.0",
      "sgd-nesterov-explicit-zero-momentum"),
    # --- torch spellings are not silently accepted
    C(lambda: oz.Adam(betas=(0.9, 0.99)), ValueError,
      r"Argument\(s\) not recognized: \{'betas': \(0\.9, 0\.99\)\}",
      "adam-torch-betas"),
    C(lambda: oz.SGD(lr=0.1), ValueError,
      r"Argument\(s\) not recognized: \{'lr': 0\.1\}", "sgd-torch-lr"),
    C(lambda: oz.RMSprop(alpha=0.9), ValueError,
      r"Argument\(s\) not recognized: \{'alpha': 0\.9\}",
      "rmsprop-torch-alpha"),
    # --- Keras base arguments: ZooOptimizer checks ema_momentum itself (in
    # its own wording, also without use_ema; see BASE_ARG_CASES)
    C(lambda: oz.SGD(use_ema=True, ema_momentum=2.0), ValueError,
      _range("ema_momentum", r"in \[0, 1\]", "2"), "sgd-ema-momentum"),
]


def _set_lr(value):
    opt = oz.Adam(learning_rate=0.1)
    opt.learning_rate = value


# Keras base-class arguments that Keras leaves unchecked (ZooOptimizer
# checks them before calling the Keras constructor).
BASE_ARG_CASES = [
    C(lambda: oz.SGD(clipnorm=-1), ValueError,
      _range("clipnorm", "> 0", "-1"), "base-clipnorm-neg"),
    C(lambda: oz.Adam(clipvalue=0.0), ValueError,
      _range("clipvalue", "> 0", "0"), "base-clipvalue-zero"),
    C(lambda: oz.Adam(global_clipnorm=NAN), ValueError,
      _range("global_clipnorm", "> 0", "nan"), "base-global-clipnorm-nan"),
    C(lambda: oz.SGD(clipnorm="1"), TypeError,
      _type("clipnorm", "'1'"), "base-clipnorm-str"),
    C(lambda: oz.SGD(gradient_accumulation_steps=0), ValueError,
      r"Argument `gradient_accumulation_steps` must be an integer >= 2 or "
      r"None\. Received: gradient_accumulation_steps=0",
      "base-accumulation-zero"),
    C(lambda: oz.SGD(gradient_accumulation_steps=2.0), TypeError,
      r"Argument `gradient_accumulation_steps` must be an integer >= 2 or "
      r"None\. Received: gradient_accumulation_steps=2\.0",
      "base-accumulation-float"),
    C(lambda: oz.SGD(gradient_accumulation_steps=True), TypeError,
      r"Received: gradient_accumulation_steps=True",
      "base-accumulation-bool"),
    C(lambda: oz.RMSprop(ema_momentum=1.5), ValueError,
      _range("ema_momentum", r"in \[0, 1\]", r"1\.5"),
      "base-ema-momentum-without-use-ema"),
    C(lambda: oz.RMSprop(use_ema=True, ema_momentum=-0.1), ValueError,
      _range("ema_momentum", r"in \[0, 1\]", r"-0\.1"),
      "base-ema-momentum-neg"),
    C(lambda: oz.Adadelta(loss_scale_factor=-2.0), ValueError,
      _range("loss_scale_factor", "> 0", "-2"), "base-loss-scale-neg"),
]

SETTER_CASES = [
    # the learning-rate setter (used by callbacks) checks like the ctor
    C(lambda: _set_lr(-1.0), ValueError,
      _range("learning_rate", ">= 0", "-1"), "setter-lr-neg"),
    C(lambda: _set_lr(NAN), ValueError,
      _range("learning_rate", ">= 0", "nan"), "setter-lr-nan"),
    C(lambda: _set_lr(INF), ValueError,
      _range("learning_rate", ">= 0", "inf"), "setter-lr-inf"),
    C(lambda: _set_lr(None), ValueError,
      _type("learning_rate", "None"), "setter-lr-none"),
]

REGISTRY_CASES = [
    C(lambda: oz.get("adamx"), ValueError,
      r"Unknown optimizer name: 'adamx'\. Did you mean .*'adam'.*"
      r"Known names: .*adadelta", "get-typo"),
    C(lambda: oz.get(""), ValueError,
      r"Unknown optimizer name: ''\. Known names: ", "get-empty"),
    C(lambda: oz.get("torch.optim.Adam"), ValueError,
      r"Unknown optimizer name: 'torch\.optim\.Adam'", "get-dotted"),
    C(lambda: oz.get(3), TypeError,
      r"Argument `identifier` must be an optimizer name.*"
      r"Received: identifier=3", "get-int"),
    C(lambda: oz.list_optimizers(3), TypeError,
      r"Argument `pattern` must be a str.*Received: pattern=3",
      "list-optimizers-int"),
    # oz.get(None) returns None, as keras.optimizers.get(None) does (issue 9)
    C(lambda: oz.get(None, momentum=0.9), ValueError,
      r"Keyword overrides need an optimizer name, not None\. "
      r"Received: identifier=None", "get-none-with-overrides"),
    C(lambda: oz.get("nag", learnin_rate=0.1), ValueError,
      r"Argument\(s\) not recognized: \{'learnin_rate': 0\.1\}",
      "get-bad-override-name"),
    C(lambda: oz.get("momentum", momentum=-1.0), ValueError,
      _range("momentum", ">= 0", "-1"), "get-bad-override-value"),
    C(lambda: oz.get("adam", beta_1=INF), ValueError,
      _range("beta_1", r"in \[0, 1\)", "inf"), "get-override-inf"),
    C(lambda: oz.get(oz.SGD(), momentum=0.9), ValueError,
      r"Keyword overrides need an optimizer name, not an instance\. "
      r"Received: identifier=.*overrides=\{'momentum': 0\.9\}",
      "get-instance-with-overrides"),
]

PLATEAU = oz.callbacks.ReduceLROnPlateau
CALLBACK_CASES = [
    C(lambda: PLATEAU(factor=1.0), ValueError,
      _range("factor", r"in \(0, 1\)", "1"), "plateau-factor-one"),
    C(lambda: PLATEAU(factor=0.0), ValueError,
      _range("factor", r"in \(0, 1\)", "0"), "plateau-factor-zero"),
    C(lambda: PLATEAU(factor=NAN), ValueError,
      _range("factor", r"in \(0, 1\)", "nan"), "plateau-factor-nan"),
    C(lambda: PLATEAU(factor="0.1"), TypeError,
      _type("factor", r"'0\.1'"), "plateau-factor-str"),
    C(lambda: PLATEAU(patience=-1), ValueError,
      _range("patience", ">= 0", "-1"), "plateau-patience-neg"),
    C(lambda: PLATEAU(patience=1.5), TypeError,
      r"Argument `patience` must be an integer\. Received: patience=1\.5",
      "plateau-patience-float"),
    C(lambda: PLATEAU(patience=True), TypeError,
      r"Argument `patience` must be an integer\. Received: patience=True",
      "plateau-patience-bool"),
    C(lambda: PLATEAU(cooldown=-2), ValueError,
      _range("cooldown", ">= 0", "-2"), "plateau-cooldown-neg"),
    C(lambda: PLATEAU(threshold=-1.0), ValueError,
      _range("threshold", ">= 0", "-1"), "plateau-threshold-neg"),
    C(lambda: PLATEAU(threshold=INF), ValueError,
      _range("threshold", ">= 0", "inf"), "plateau-threshold-inf"),
    C(lambda: PLATEAU(min_lr=NAN), ValueError,
      _range("min_lr", ">= 0", "nan"), "plateau-min-lr-nan"),
    C(lambda: PLATEAU(eps=-1.0), ValueError,
      _range("eps", ">= 0", "-1"), "plateau-eps-neg"),
    C(lambda: PLATEAU(verbose=3), ValueError,
      r"Argument `verbose` must be 0, 1, 2 or a bool\. Received: verbose=3",
      "plateau-verbose-3"),
    C(lambda: PLATEAU(verbose="1"), TypeError,
      r"Argument `verbose` must be .*Received: verbose='1'",
      "plateau-verbose-str"),
    C(lambda: PLATEAU(monitor=""), ValueError,
      r"Argument `monitor` must be a non-empty str.*Received: monitor=''",
      "plateau-monitor-empty"),
    C(lambda: PLATEAU(monitor=None), TypeError,
      r"Argument `monitor` must be a non-empty str.*Received: monitor=None",
      "plateau-monitor-none"),
    C(lambda: PLATEAU(mode="minimum"), ValueError,
      r"Argument `mode` must be one of 'min', 'max'\. "
      r"Received: mode='minimum'", "plateau-mode"),
    C(lambda: PLATEAU(threshold_mode="relative"), ValueError,
      r"Argument `threshold_mode` must be one of 'rel', 'abs'\. "
      r"Received: threshold_mode='relative'", "plateau-threshold-mode"),
]

SCHEDULE_CASES = [
    C(lambda: S.StepLR(0.1, step_size=0), ValueError,
      _range("step_size", ">= 1", "0"), "steplr-step-zero"),
    C(lambda: S.StepLR(0.1, step_size=1.5), TypeError,
      r"Argument `step_size` must be an integer\. Received: step_size=1\.5",
      "steplr-step-float"),
    C(lambda: S.StepLR(0.1, step_size=True), TypeError,
      r"Argument `step_size` must be an integer\. Received: step_size=True",
      "steplr-step-bool"),
    C(lambda: S.StepLR(0.1, 2, gamma=NAN), ValueError,
      _range("gamma", "> 0", "nan"), "steplr-gamma-nan"),
    C(lambda: S.StepLR(0.1, 2, gamma=-1.0), ValueError,
      _range("gamma", "> 0", "-1"), "steplr-gamma-neg"),
    C(lambda: S.StepLR(-0.1, 2), ValueError,
      _range("initial_learning_rate", ">= 0", r"-0\.1"), "steplr-lr-neg"),
    C(lambda: S.StepLR(INF, 2), ValueError,
      _range("initial_learning_rate", ">= 0", "inf"), "steplr-lr-inf"),
    C(lambda: S.StepLR("0.1", 2), TypeError,
      _type("initial_learning_rate", r"'0\.1'"), "steplr-lr-str"),
    C(lambda: S.StepLR(0.1, 2, steps_per_epoch=0), ValueError,
      _range("steps_per_epoch", ">= 1", "0"), "steplr-spe-zero"),
    C(lambda: S.StepLR(0.1, 2, steps_per_epoch=2.5), TypeError,
      r"Argument `steps_per_epoch` must be an integer\. "
      r"Received: steps_per_epoch=2\.5", "steplr-spe-float"),
    C(lambda: S.MultiStepLR(0.1, [-1, 3]), ValueError,
      _range(r"milestones\[0\]", ">= 0", "-1"), "multistep-neg"),
    C(lambda: S.MultiStepLR(0.1, [1.5]), TypeError,
      r"Argument `milestones\[0\]` must be an integer",
      "multistep-float"),
    C(lambda: S.MultiStepLR(0.1, 5), TypeError,
      r"Argument `milestones` must be a sequence of ints >= 0\. "
      r"Received: milestones=5", "multistep-int"),
    C(lambda: S.ExponentialLR(0.1, gamma=0.0), ValueError,
      _range("gamma", "> 0", "0"), "exponential-gamma-zero"),
    C(lambda: S.ExponentialLR(0.1, gamma=INF), ValueError,
      _range("gamma", "> 0", "inf"), "exponential-gamma-inf"),
    C(lambda: S.PolynomialLR(0.1, total_iters=5, power=-1.0), ValueError,
      _range("power", ">= 0", "-1"), "polynomial-power-neg"),
    C(lambda: S.PolynomialLR(0.1, total_iters=0), ValueError,
      _range("total_iters", ">= 1", "0"), "polynomial-total-zero"),
    C(lambda: S.ConstantLR(0.1, factor=2.0), ValueError,
      _range("factor", r"in \[0, 1\]", "2"), "constant-factor-big"),
    C(lambda: S.LinearLR(0.1, start_factor=0.0), ValueError,
      _range("start_factor", r"in \(0, 1\]", "0"), "linear-start-zero"),
    C(lambda: S.LinearLR(0.1, end_factor=-1.0), ValueError,
      _range("end_factor", r"in \[0, 1\]", "-1"), "linear-end-neg"),
    C(lambda: S.CosineAnnealingLR(0.1, T_max=0), ValueError,
      _range("T_max", ">= 1", "0"), "cosine-tmax-zero"),
    C(lambda: S.CosineAnnealingLR(0.1, T_max=5, eta_min=-1.0), ValueError,
      _range("eta_min", ">= 0", "-1"), "cosine-eta-min-neg"),
    C(lambda: S.CosineAnnealingWarmRestarts(0.1, T_0=0), ValueError,
      _range("T_0", ">= 1", "0"), "warm-restarts-t0-zero"),
    C(lambda: S.CosineAnnealingWarmRestarts(0.1, T_0=2, T_mult=1.5),
      TypeError, r"Argument `T_mult` must be an integer\. "
      r"Received: T_mult=1\.5", "warm-restarts-tmult-float"),
    C(lambda: S.CyclicLR(0.01, 0.1, mode="tri"), ValueError,
      r"Argument `mode` must be one of .*'triangular'.*\. "
      r"Received: mode='tri'", "cyclic-mode"),
    C(lambda: S.CyclicLR(0.01, 0.1, step_size_up=0), ValueError,
      _range("step_size_up", ">= 1", "0"), "cyclic-step-zero"),
    C(lambda: S.CyclicLR(NAN, 0.1), ValueError,
      _range("base_lr", ">= 0", "nan"), "cyclic-base-nan"),
    C(lambda: S.OneCycleLR(0.1), ValueError,
      r"OneCycleLR needs `total_steps`, or both `epochs` and "
      r"`steps_per_epoch`\. Received: total_steps=None", "onecycle-no-length"),
    C(lambda: S.OneCycleLR(0.1, total_steps=10, pct_start=1.5), ValueError,
      _range("pct_start", r"in \[0, 1\]", r"1\.5"), "onecycle-pct"),
    C(lambda: S.OneCycleLR(0.1, total_steps=10, anneal_strategy="exp"),
      ValueError, r"Argument `anneal_strategy` must be one of .*\. "
      r"Received: anneal_strategy='exp'", "onecycle-anneal"),
    C(lambda: S.OneCycleLR(0.1, total_steps=10, div_factor=0.0), ValueError,
      _range("div_factor", "> 0", "0"), "onecycle-div-zero"),
    C(lambda: S.SequentialLR([S.StepLR(0.1, 2), S.StepLR(0.1, 2)],
                             milestones=[1, 2]), ValueError,
      r"Argument `milestones` must have one entry fewer than `schedulers` "
      r"\(1\)\. Received: milestones=\[1, 2\]", "sequential-milestones"),
    C(lambda: S.SequentialLR([0.1, S.StepLR(0.1, 2)], milestones=[2]),
      TypeError, r"Argument `schedulers\[0\]` must be a "
      r"keras\.optimizers\.schedules\.LearningRateSchedule\. "
      r"Received: schedulers\[0\]=0\.1", "sequential-not-schedule"),
    C(lambda: S.ChainedScheduler([]), ValueError,
      r"Argument `schedulers` must hold at least one schedule\. "
      r"Received: schedulers=\[\]", "chained-empty"),
    C(lambda: S.LambdaLR(0.1, lr_lambda=3), TypeError,
      r"Argument `lr_lambda` must be a callable\. Received: lr_lambda=3",
      "lambda-not-callable"),
]

ALL_CASES = (OPTIMIZER_CASES + BASE_ARG_CASES + SETTER_CASES
             + REGISTRY_CASES + CALLBACK_CASES + SCHEDULE_CASES)


@pytest.mark.parametrize("factory,error,match", ALL_CASES)
def test_bad_input_is_rejected(factory, error, match):
    with pytest.raises(error, match=match) as info:
        factory()
    # Exactly the type asked for (TypeError for wrong types, ValueError for
    # bad values), not a subclass raised by accident deeper down.
    assert type(info.value) is error


def test_case_count():
    """The issue asks for at least 60 new rejected inputs."""
    assert len(ALL_CASES) >= 60


def test_valid_edge_values_are_accepted():
    """The boundaries themselves are legal (the checks are not too strict)."""
    oz.SGD(learning_rate=0, momentum=0.0, dampening=1.0)
    oz.Adam(beta_1=0.0, beta_2=0.0, epsilon=0.0, weight_decay=0.0)
    oz.Adadelta(rho=1.0)
    oz.RMSprop(rho=0.0)
    oz.SGD(momentum=keras.optimizers.schedules.ExponentialDecay(0.9, 1, 0.5),
           nesterov=True)
    S.ConstantLR(0.1, factor=0.0)
    PLATEAU(factor=0.5, patience=0, cooldown=0, min_lr=0.0)
    PLATEAU(verbose=True, monitor="loss")
    PLATEAU(verbose=2)
    oz.SGD(clipnorm=1, gradient_accumulation_steps=2, ema_momentum=0.0,
           loss_scale_factor=np.float32(128))
    oz.Adam(clipvalue=1e-9, use_ema=True, ema_momentum=1.0)
    oz.Adam(global_clipnorm=0.5, gradient_accumulation_steps=np.int64(4))
    S.MultiStepLR(0.1, (2, 5))
    S.MultiStepLR(0.1, range(1, 4))
    assert oz.list_optimizers("adam*")
    assert math.isfinite(float(oz.get("adam", learning_rate=1e-30)
                               .get_config()["learning_rate"]))
