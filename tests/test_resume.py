"""Exact resume: N steps, save, load, M more steps == N + M uninterrupted.

Oracle: the same training run without interruption, in the same process.
Observed: bit-exact on TensorFlow, JAX and torch (CPU) for every optimizer,
config, save path and schedule below, so the comparisons are exact
(``assert_array_equal``); a change that loses or reorders saved state fails.

Also pins the saved file format: optimizer state is saved by position
(``optimizer/vars/0..N``), so the variable layout per config is written here
as a rule, independent of the code that creates it.
"""

import warnings

import numpy as np
import pytest

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz

N_SAMPLES = 192
BATCH = 32          # 6 steps per epoch
EPOCHS_BEFORE = 1   # N = 6 steps
EPOCHS_AFTER = 1    # M = 6 steps

#: 2-3 configs per optimizer, chosen to cover every kind of slot
#: (momentum buffers, amsgrad maxima, centered averages, NAdam's scalar
#: μ-product, Adagrad's initial accumulator, lr_decay).
RESUME_CONFIGS = {
    "sgd": ["momentum", "nesterov"],
    "adagrad": ["lr_decay_init", "wd"],
    "rmsprop": ["centered_momentum_wd", "momentum"],
    "adadelta": ["default", "wd"],
    "adam": ["amsgrad", "wd_decoupled"],
    "adamw": ["amsgrad", "default"],
    "nadam": ["default", "wd_decoupled"],
}


#: On TensorFlow and JAX, one optimizer per way of keeping state
#: (specs.MECHANISMS) plus the two newer ones (Kron's seed-generator state,
#: 8-bit uint8 codes with per-block scales): what a resume can lose is an
#: optimizer variable left out of the file or restored in the wrong order,
#: which is Python shared by the backends and found for every optimizer on
#: torch; what is backend-specific (how a backend's variables are written
#: and read, the compiled fit's state threading) is the same for every
#: optimizer of a mechanism. TF adds three compiled fits per optimizer
#: (~9 s each), JAX ~4.5 s per optimizer (~200 s for all): the CI budget.
TF_RESUME = set(specs.MECHANISMS) | {"kron", "adamw8bit"}


def _resume_params():
    """Every optimizer, in the config with the most state (the first of
    RESUME_CONFIGS where given): ``model.save`` -> ``load_model`` (no
    custom_objects) -> resume, bit-exact. The optimizers of
    specs.MECHANISMS (one per way the base class declares and writes state)
    also go through every other file path (ModelCheckpoint, load_weights)
    and, on TF, train under XLA (see harness.fit_jit_compile)."""
    out = []
    for spec in specs.SPECS:
        if harness.backend() != "torch" and spec.name not in TF_RESUME:
            continue
        ids = (RESUME_CONFIGS.get(spec.name) or [spec.configs[-1].id])[:1]
        for config_id in ids:
            config = spec.config(config_id)
            out.append(pytest.param(spec, config,
                                    id=f"{spec.name}-{config.id}"))
    return out


_model = harness.digits_model


def _digits():
    return harness.digits(N_SAMPLES)


def _fit(model, x, y, epochs, callbacks=None):
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False,
                     verbose=0, callbacks=callbacks)


def _numpy(variables):
    return [ops.convert_to_numpy(v) for v in variables]


def _assert_same(actual, expected, what):
    assert len(actual) == len(expected), what
    for i, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}[{i}]")


def _check_resume(make_optimizer, tmp_path, paths=("load_model",),
                  jit_compile=None):
    x, y = _digits()

    def _model(optimizer):
        return harness.digits_model(optimizer, jit_compile=jit_compile)

    first = _model(make_optimizer())
    checkpoint = tmp_path / "ckpt.keras"
    callbacks = []
    if "ModelCheckpoint" in paths:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint)))
    _fit(first, x, y, EPOCHS_BEFORE, callbacks=callbacks)
    saved = tmp_path / "model.keras"
    weights = tmp_path / "model.weights.h5"
    first.save(saved)
    first.save_weights(weights)
    state = _numpy(first.optimizer.variables)
    saved_weights = _numpy(first.weights)

    resumed = {}
    # 1. model.save -> keras.models.load_model (no custom_objects)
    resumed["load_model"] = keras.models.load_model(saved)
    if "ModelCheckpoint" in paths:
        # 2. keras.callbacks.ModelCheckpoint's file (end of epoch N). It is
        # written before `fit` ends with the optimizer's
        # finalize_variable_values (a no-op but for EMA and the
        # schedule-free optimizers' switch to eval mode): the same
        # finalisation brings it to the state `fit` left.
        model = keras.models.load_model(checkpoint)
        model.optimizer.finalize_variable_values(model.trainable_weights)
        resumed["ModelCheckpoint"] = model
    if "load_weights" in paths:
        # 3. save_weights -> load_weights. The .weights.h5 file holds the
        # optimizer state too, but Keras loads it only into a *built*
        # optimizer (an unbuilt one warns "Skipping variable loading" and
        # starts fresh, see test_load_weights_into_unbuilt_optimizer_warns):
        # build it first.
        model = _model(make_optimizer())
        model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
        resumed["load_weights"] = model

    # The oracle: the saved model itself trains on, uninterrupted (saving
    # reads state only), to N + M steps.
    _fit(first, x, y, EPOCHS_AFTER)
    expected = _numpy(first.weights)
    expected_opt = _numpy(first.optimizer.variables)

    def config_of(model):
        # the name differs for a freshly made optimizer (load_weights path)
        return {k: v for k, v in model.optimizer.get_config().items()
                if k != "name"}

    config = config_of(first)
    for how, model in resumed.items():
        _assert_same(_numpy(model.optimizer.variables), state,
                     f"{how}: restored optimizer state")
        _assert_same(_numpy(model.weights), saved_weights,
                     f"{how}: restored weights")
        assert config_of(model) == config, how
        assert type(model.optimizer) is type(first.optimizer), how
        if how in CHECKED_ONLY_PATHS:
            # ModelCheckpoint writes its file with the same `model.save`
            # and is read by the same load_model as path 1: equal weights,
            # optimizer state and config (checked above) determine the
            # rest of the run, and training it on would only add a third
            # compile (the bulk of this file's runtime on JAX and TF).
            continue
        _fit(model, x, y, EPOCHS_AFTER)
        _assert_same(_numpy(model.weights), expected, f"{how}: weights")
        _assert_same(_numpy(model.optimizer.variables), expected_opt,
                     f"{how}: optimizer variables")


ALL_PATHS = ("load_model", "ModelCheckpoint", "load_weights")
#: restored, checked, not trained on (see _check_resume)
CHECKED_ONLY_PATHS = ("ModelCheckpoint",)


@pytest.mark.parametrize("spec,config", _resume_params())
def test_resume_is_exact(spec, config, tmp_path):
    paths = ALL_PATHS if spec.name in specs.MECHANISMS else ("load_model",)
    _check_resume(lambda: spec.cls(**config.kwargs), tmp_path, paths,
                  jit_compile=harness.fit_jit_compile(spec.name))


def _schedules():
    steps_per_epoch = N_SAMPLES // BATCH
    total = steps_per_epoch * (EPOCHS_BEFORE + EPOCHS_AFTER)
    out = [
        pytest.param(
            lambda: oz.SGD(
                keras.optimizers.schedules.ExponentialDecay(
                    0.05, decay_steps=2, decay_rate=0.7), momentum=0.9),
            id="sgd-momentum-keras-ExponentialDecay"),
        # The zoo's schedules (torch lr_scheduler semantics); resumed in the
        # middle: the StepLR drop and OneCycle's peak both fall in part 2.
        pytest.param(
            lambda: oz.Adam(oz.schedules.StepLR(0.05, step_size=2, gamma=0.5,
                                                steps_per_epoch=4),
                            amsgrad=True),
            id="adam-amsgrad-oz-StepLR"),
        pytest.param(
            lambda: oz.RMSprop(oz.schedules.OneCycleLR(
                0.05, total_steps=total, pct_start=0.6), momentum=0.9),
            id="rmsprop-momentum-oz-OneCycleLR"),
    ]
    return out


@pytest.mark.parametrize("make_optimizer", _schedules())
def test_resume_mid_schedule_is_exact(make_optimizer, tmp_path):
    _check_resume(make_optimizer, tmp_path, ALL_PATHS)


def test_resume_with_plateau_scale_is_exact(tmp_path):
    """A learning_rate_scale lowered by ReduceLROnPlateau is saved too."""
    def make():
        opt = oz.Adam(learning_rate=0.01)
        opt.learning_rate_scale.assign(0.25)
        return opt

    _check_resume(make, tmp_path)


def test_load_weights_into_unbuilt_optimizer_warns(tmp_path):
    """Documents Keras's behaviour: ``load_weights`` into a model whose
    optimizer is not built yet keeps the weights but not the optimizer state
    (Keras warns). Build the optimizer first to resume (see above)."""
    x, y = _digits()
    first = _model(oz.Adam(learning_rate=0.01))
    _fit(first, x, y, 1)
    path = tmp_path / "w.weights.h5"
    first.save_weights(path)
    model = _model(oz.Adam(learning_rate=0.01))
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        model.load_weights(path)
    _assert_same(_numpy(model.weights), _numpy(first.weights), "weights")


# ---------------------------------------------------------- file format
def expected_slots(name, kwargs, shape=None):
    """The saved slots of a parameter of ``shape``, in order:
    (slot name, kind), kind False for a slot shaped like the parameter,
    True for a 0-d slot, or the slot's own shape.

    The second-wave optimizers declare theirs in their spec (``slots``);
    the seed optimizers' rules are below.

    Written from torch's state names, not from the code: changing this is a
    file-format change that orphans saved optimizer state.
    """
    def real(key):
        value = kwargs.get(key, 0.0)
        return not (isinstance(value, float) and value == 0.0)

    if name == "sgd":
        return [("momentum_buffer", False)] if real("momentum") else []
    if name == "adagrad":
        return [("sum", False)]
    if name == "rmsprop":
        return ([("square_avg", False)]
                + ([("momentum_buffer", False)] if real("momentum") else [])
                + ([("grad_avg", False)] if kwargs.get("centered") else []))
    if name == "adadelta":
        return [("square_avg", False), ("acc_delta", False)]
    if name in ("adam", "adamw"):
        return ([("exp_avg", False), ("exp_avg_sq", False)]
                + ([("max_exp_avg_sq", False)] if kwargs.get("amsgrad")
                   else []))
    if name == "nadam":
        return [("exp_avg", False), ("exp_avg_sq", False),
                ("mu_product", True)]
    spec = specs.SPECS_BY_NAME.get(name)
    if spec is not None and spec.slots is not None:
        return spec.slots(kwargs, (3, 4) if shape is None else shape)
    raise AssertionError(
        f"No saved-layout rule for optimizer {name!r}: add one to "
        "expected_slots() in tests/test_resume.py")


LAYOUT_SHAPES = [(3, 4), (5,), ()]


def expected_layout(name, kwargs, schedule=False):
    layout = [("iteration", ())]
    if not schedule:
        layout.append(("learning_rate", ()))
    # plateau_state: [has_best, best as four 16-bit words of a double,
    # num_bad_epochs, cooldown_counter, the double lr the callback last set
    # as four words] (keras_optzoo/callbacks/_common.py)
    layout += [("learning_rate_scale", ()), ("plateau_state", (11,))]
    for index, shape in enumerate(LAYOUT_SHAPES):
        for slot, kind in expected_slots(name, kwargs, shape):
            if kind is True:
                layout.append((f"{slot}_{index}", ()))
            elif kind is False:
                layout.append((f"v{index}_{slot}", shape))
            else:  # a slot with a shape of its own (SlotSpec(shape=...))
                layout.append((f"{slot}_{index}", tuple(kind)))
    spec = specs.SPECS_BY_NAME.get(name)
    if spec is not None and spec.extra_variables is not None:
        layout += [(n, tuple(shape))
                   for n, shape in spec.extra_variables(kwargs)]
    return layout


def _actual_layout(optimizer):
    variables = [keras.Variable(np.zeros(s, "float32"), name=f"v{i}")
                 for i, s in enumerate(LAYOUT_SHAPES)]
    optimizer.build(variables)
    return [(v.path.split("/")[-1], tuple(v.shape))
            for v in optimizer.variables]


@pytest.mark.parametrize("spec,config", specs.all_configs())
def test_saved_variable_layout(spec, config):
    # an optimizer that computes its own step size where the config gives
    # no rate (spec.external_rate: HFAdafactor's relative step) holds it
    # as a schedule: no learning_rate variable
    computed = spec.external_rate is not None and \
        "learning_rate" not in config.kwargs
    assert _actual_layout(spec.cls(**config.kwargs)) == expected_layout(
        spec.name, config.kwargs, schedule=computed)


def test_saved_variable_layout_with_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert _actual_layout(oz.Adam(learning_rate=schedule)) == \
        expected_layout("adam", {}, schedule=True)


def test_every_optimizer_has_a_layout_rule():
    for spec in specs.SPECS:
        expected_slots(spec.name, {})


# ------------------------------------------- mismatched state is not dropped
def _saved_weights(optimizer, tmp_path):
    x, y = _digits()
    model = _model(optimizer)
    _fit(model, x, y, 1)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    return path


@pytest.mark.parametrize("saved,loading", [
    pytest.param(lambda: oz.Adam(amsgrad=True), lambda: oz.Adam(),
                 id="amsgrad-toggled"),
    pytest.param(lambda: oz.SGD(momentum=0.9), lambda: oz.SGD(),
                 id="sgd-momentum-toggled"),
    pytest.param(lambda: oz.RMSprop(centered=True),
                 lambda: oz.RMSprop(centered=True, momentum=0.5),
                 id="rmsprop-momentum-added"),
    # same count, different shapes: NAdam's scalar μ-product where Adam's
    # amsgrad maximum is a full tensor.
    pytest.param(lambda: oz.Adam(amsgrad=True), lambda: oz.NAdam(),
                 id="same-count-different-shapes"),
])
def test_loading_mismatched_state_raises(saved, loading, tmp_path):
    path = _saved_weights(saved(), tmp_path)
    model = _model(loading())
    model.optimizer.build(model.trainable_variables)
    before = _numpy(model.optimizer.variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no silent "Skipping"
        with pytest.raises(ValueError, match=(
                r"(?s)Saved optimizer state does not match the layout of "
                r"optimizer .*Saved: \d+ variables with shapes .*"
                r"This optimizer: \d+ variables \[.*iteration")):
            model.load_weights(path)
    _assert_same(_numpy(model.optimizer.variables), before,
                 "state after a refused load")


def test_load_own_variables_direct_store():
    """The check itself, with a plain dict store (no file)."""
    opt = oz.Adam()
    opt.build([keras.Variable(np.zeros((2, 2), "float32"))])
    good = {str(i): np.full(v.shape, 0.5, v.dtype)
            for i, v in enumerate(opt.variables)}
    opt.load_own_variables(good)
    assert float(ops.convert_to_numpy(opt.variables[-1])[0, 0]) == 0.5
    bad = dict(good)
    bad[str(len(good) - 1)] = np.zeros((3, 2), "float32")
    with pytest.raises(ValueError, match=r"\(3, 2\).*exp_avg_sq\(2, 2\)"):
        opt.load_own_variables(bad)
