"""keras-optzoo optimizers behave as Keras optimizers (issue 9).

Every test is parametrised over the spec database (``specs.SPECS``), so a
new optimizer is covered by adding its spec. The oracle is Keras's own
documented behaviour (``keras.optimizers.Optimizer``), checked on a Keras
built-in where the behaviour is Keras's, and an equal twin optimizer where
it is a property of the update.

Sparse gradients (item 4) are tested in tests/test_sparse.py, the plateau
callback's double-precision metrics and float-rate reduction (items 2 and 6)
in tests/test_plateau.py; the layout of the saved state in
tests/test_resume.py.
"""

import os
import textwrap
import warnings

import numpy as np
import pytest

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz

BACKEND = keras.backend.backend()
SHAPES = [(4, 3), (3,)]


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.normal(size=s).astype("float32"),
                           name=f"w{i}") for i, s in enumerate(SHAPES)]


def _grads(seed):
    rng = np.random.default_rng(100 + seed)
    return [ops.convert_to_tensor(rng.normal(size=s).astype("float32"))
            for s in SHAPES]


def _numpy(values):
    return [ops.convert_to_numpy(v) for v in values]


def _assert_equal(actual, expected, what):
    assert len(actual) == len(expected), what
    for i, (a, b) in enumerate(zip(actual, expected)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}[{i}]")


def _make(spec, config, **extra):
    return spec.cls(**{**config.kwargs, **extra})


def _lr(optimizer):
    return float(optimizer.get_config()["learning_rate"])


def _tiny_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


#: Keras-integration checks: one optimizer per base-class mechanism (see
#: specs.MECHANISMS for why that covers them); argument validation below
#: runs for every optimizer.
DEFAULTS = specs.mechanism_configs()


def _decay_configs():
    """Specs whose optimizer takes ``weight_decay`` (both modes)."""
    return [p for p in DEFAULTS
            if {"weight_decay", "decoupled_weight_decay"}
            & p.values[0].capabilities]


# ------------------------------------- 1. a model saved before training
@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_model_saved_before_training_loads(spec, config, tmp_path):
    """``compile`` + ``save`` + ``load_model`` with no training in between
    (an initial checkpoint): loads without error or warning, restores what
    an unbuilt optimizer has (iterations, the plateau variables) and starts
    from fresh slots, as a Keras optimizer does."""
    model = _tiny_model(_make(spec, config))
    assert not model.optimizer.built
    model.optimizer.learning_rate_scale.assign(0.5)
    plateau = np.arange(1, 12, dtype="float32")
    model.optimizer._plateau_state.assign(plateau)
    path = tmp_path / "untrained.keras"
    model.save(path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*[Ss]kipping variable")
        loaded = keras.models.load_model(path)
    opt = loaded.optimizer
    assert opt.built
    assert float(ops.convert_to_numpy(opt.learning_rate_scale)) == 0.5
    np.testing.assert_array_equal(
        ops.convert_to_numpy(opt._plateau_state), plateau)
    assert int(ops.convert_to_numpy(opt.iterations)) == 0
    # fresh slots: equal to a new optimizer built on the same variables
    fresh = _make(spec, config)
    fresh.build(loaded.trainable_variables)
    fresh.learning_rate_scale.assign(0.5)
    fresh._plateau_state.assign(plateau)
    _assert_equal(_numpy(opt.variables), _numpy(fresh.variables),
                  "loaded optimizer state")
    # and it trains on
    grads = [ops.ones(v.shape) for v in loaded.trainable_variables]
    opt.apply(grads, loaded.trainable_variables)
    assert int(ops.convert_to_numpy(opt.iterations)) == 1


@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_untrained_state_of_another_layout_still_raises(spec, config):
    """What is restored from an unbuilt optimizer must still match: a float
    learning rate saved, a schedule loading (one variable fewer), raises;
    so does a trained optimizer's state whose count happens to equal the
    unbuilt count (a no-slot optimizer's), loaded into one with slots."""
    saved = {}
    _make(spec, config).save_own_variables(saved)   # unbuilt, float lr
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    loading = _make(spec, config, learning_rate=schedule)
    loading.build(_variables())
    with pytest.raises(ValueError, match="does not match the layout"):
        loading.load_own_variables(saved)

    # a trained slot-free SGD: as many variables as an unbuilt optimizer
    plain = oz.SGD(learning_rate=0.1)
    plain.build(_variables())
    plain.apply(_grads(0))
    trained = {}
    plain.save_own_variables(trained)
    momentum = oz.SGD(learning_rate=0.1, momentum=0.9)
    momentum.build(_variables())
    with pytest.raises(ValueError, match="does not match the layout"):
        momentum.load_own_variables(trained)


def test_legacy_plateau_state_layout_is_upgraded():
    """State saved with the older (4,) float32 plateau_state loads, the
    best metric converted to the double-precision layout."""
    from keras_optzoo.callbacks._common import decode_plateau_state

    opt = oz.SGD(learning_rate=0.1)
    opt.build(_variables())
    store = {}
    opt.save_own_variables(store)
    index = [id(v) for v in opt.variables].index(id(opt._plateau_state))
    store[str(index)] = np.array([1.0, 0.25, 2.0, 1.0], "float32")
    opt.load_own_variables(store)
    assert decode_plateau_state(ops.convert_to_numpy(opt._plateau_state)) \
        == (True, 0.25, 2, 1, 0.0)


# ------------------------------------------ 2. learning_rate is Keras's
@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_learning_rate_is_the_keras_variable(spec, config):
    opt = _make(spec, config)
    lr = opt.learning_rate
    assert isinstance(lr, keras.Variable)
    assert lr is opt._learning_rate
    assert any(v is lr for v in opt.variables)
    base = _lr(opt)
    assert float(lr.numpy()) == np.float32(base)
    assert float(ops.convert_to_numpy(lr.value)) == np.float32(base)
    # .assign sets the rate the update uses (times learning_rate_scale)
    lr.assign(base * 0.5)
    halved = _make(spec, config, learning_rate=base * 0.5)
    scaled = _make(spec, config)
    scaled.learning_rate_scale.assign(0.5)
    results = []
    for o in (opt, halved, scaled):
        variables = _variables()
        o.apply(_grads(0), variables)
        results.append(_numpy(variables))
    _assert_equal(results[0], results[1], "lr.assign vs constructor")
    _assert_equal(results[2], results[1], "learning_rate_scale 0.5")
    # Keras's setter keeps working on the same variable
    opt.learning_rate = 0.003
    assert opt.learning_rate is lr
    assert float(lr.numpy()) == np.float32(0.003)


@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_learning_rate_of_a_schedule_is_its_current_value(spec, config):
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=1, decay_rate=0.5)
    opt = _make(spec, config, learning_rate=schedule)
    opt.build(_variables())
    assert float(ops.convert_to_numpy(opt.learning_rate)) == \
        pytest.approx(0.1)
    opt.apply(_grads(0))
    assert float(ops.convert_to_numpy(opt.learning_rate)) == \
        pytest.approx(0.05)
    # the plateau scale multiplies a schedule (ReduceLROnPlateau)
    opt.learning_rate_scale.assign(0.5)
    assert float(ops.convert_to_numpy(opt.learning_rate)) == \
        pytest.approx(0.025)


@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_learning_rate_through_loss_scale_optimizer(spec, config):
    inner = _make(spec, config)
    lso = keras.optimizers.LossScaleOptimizer(inner)
    assert lso.learning_rate is inner._learning_rate
    lso.learning_rate = 0.25
    assert float(inner._learning_rate.numpy()) == 0.25
    assert lso.iterations is inner.iterations


# ------------------------------- 3. exclude_from_weight_decay after build
@pytest.mark.parametrize("spec,config", _decay_configs())
def test_exclude_from_weight_decay_repeated_after_build(spec, config):
    """A repeated call that names the same variables is accepted after
    build (tf.distribute's replicas each make it); one that would change
    the built mask raises and changes nothing."""
    extra = {} if config.kwargs.get("weight_decay") else {
        "weight_decay": 0.1}
    opt = _make(spec, config, **extra)
    reference = _make(spec, config, **extra)
    variables, ref_variables = _variables(), _variables()
    for o, vs in ((opt, variables), (reference, ref_variables)):
        o.exclude_from_weight_decay(var_names=["w1"])
        o.build(vs)
    opt.exclude_from_weight_decay(var_names=["w1"])
    opt.exclude_from_weight_decay(var_list=[variables[1]])  # same mask
    with pytest.raises(ValueError, match="must be called before the "
                                         "optimizer is built"):
        opt.exclude_from_weight_decay(var_names=["w0"])
    with pytest.raises(ValueError, match="must be called before"):
        opt.exclude_from_weight_decay()
    for t in range(3):
        opt.apply(_grads(t), variables)
        reference.apply(_grads(t), ref_variables)
    _assert_equal(_numpy(variables), _numpy(ref_variables),
                  "after refused calls")


_MIRRORED_SCRIPT = r"""
import json, sys
import torch  # noqa: F401  (torch before TF, as in conftest.py)
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
import keras
import keras_optzoo as oz

logical = tf.config.list_logical_devices("CPU")
assert len(logical) == 2, logical
strategy = tf.distribute.MirroredStrategy([d.name for d in logical])
init = [np.full((3, 2), 1.0, "float32"), np.full((2,), 1.0, "float32")]
with strategy.scope():
    variables = [keras.Variable(init[0], name="kernel"),
                 keras.Variable(init[1], name="bias")]
    opt = oz.AdamW(learning_rate=0.1, weight_decay=0.5)

def replica_step():
    # once per replica; the first replica builds the optimizer
    opt.exclude_from_weight_decay(var_names=["bias"])
    grads = [tf.ones((3, 2)), tf.ones((2,))]
    opt.apply(grads, variables)

for _ in range(2):
    # eager strategy.run: one thread per replica. (Wrapped in tf.function,
    # building the optimizer inside the replica function fails in TF itself
    # while creating variables, for Keras's built-ins too.)
    strategy.run(replica_step)

# the oracle: one device, the all-reduced (summed) gradient
ref_vars = [keras.Variable(init[0], name="kernel"),
            keras.Variable(init[1], name="bias")]
ref = oz.AdamW(learning_rate=0.1, weight_decay=0.5)
ref.exclude_from_weight_decay(var_names=["bias"])
for _ in range(2):
    ref.apply([tf.ones((3, 2)) * 2, tf.ones((2,)) * 2], ref_vars)
ours = [keras.ops.convert_to_numpy(v).tolist() for v in variables]
theirs = [keras.ops.convert_to_numpy(v).tolist() for v in ref_vars]
print("RESULT " + json.dumps({"ours": ours, "theirs": theirs,
                              "mask": [bool(m) for m in opt._decay_mask]}))
"""


if BACKEND == "tensorflow":
    # tf.distribute exists on TensorFlow only (the mask logic itself is
    # tested on every backend above).
    def test_exclude_from_weight_decay_inside_mirrored_strategy_run():
        env = dict(os.environ, KERAS_BACKEND="tensorflow",
                   TF_CPP_MIN_LOG_LEVEL="3")
        result = harness.run_worker(
            ["-c", textwrap.dedent(_MIRRORED_SCRIPT)], env, 300)
        assert result["mask"] == [True, False]
        for a, b in zip(result["ours"], result["theirs"]):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------- 5. oz.get(None)
def test_get_none_returns_none_like_keras():
    assert keras.optimizers.get(None) is None
    assert oz.get(None) is None


def _real_arguments(spec):
    """The real-valued hyperparameters the spec's configs use (not those
    whose default is None: None is a legal value there)."""
    import inspect

    defaults = {name: p.default for name, p in
                inspect.signature(spec.cls.__init__).parameters.items()}
    names = {"learning_rate"}
    if {"weight_decay", "decoupled_weight_decay"} & spec.capabilities:
        names.add("weight_decay")
    for config in spec.configs:
        names.update(k for k, v in config.kwargs.items()
                     if isinstance(v, float) and not isinstance(v, bool))
    return sorted(n for n in names if defaults.get(n, 0.0) is not None)


@pytest.mark.parametrize("spec,config", specs.default_configs())
def test_none_for_a_number_raises_value_error(spec, config):
    """Keras raises ValueError for ``AdamW(weight_decay=None)``; so does
    every zoo optimizer for ``learning_rate`` and ``weight_decay``, naming
    the argument. Any other real-valued argument given None either takes
    it as a documented value (Lamb's ``max_grad_norm=None``: no clipping)
    or raises ValueError naming it, never TypeError."""
    must = {"learning_rate"}
    if {"weight_decay", "decoupled_weight_decay"} & spec.capabilities:
        must.add("weight_decay")
    for name in _real_arguments(spec):
        try:
            spec.cls(**{**config.kwargs, name: None})
        except ValueError as error:
            assert f"`{name}`" in str(error) and f"{name}=None" in str(
                error), str(error)
            continue
        except TypeError as error:
            pytest.fail(f"{name}=None raised TypeError (Keras: ValueError): "
                        f"{error}")
        assert name not in must, f"{name}=None was accepted"


# ---------------------------------------------- the Keras optimizer API
@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_iterations_variables_and_apply_gradients(spec, config):
    opt = _make(spec, config)
    twin = _make(spec, config)
    assert isinstance(opt.iterations, keras.Variable)
    assert "int" in keras.backend.standardize_dtype(opt.iterations.dtype)
    assert opt.variables[0] is opt.iterations
    assert not opt.built
    variables, twin_variables = _variables(), _variables()
    returned = opt.apply_gradients(zip(_grads(0), variables))
    twin.apply(_grads(0), twin_variables)
    assert opt.built
    assert returned is opt._iterations  # Keras returns the counter
    assert int(ops.convert_to_numpy(opt.iterations)) == 1
    _assert_equal(_numpy(variables), _numpy(twin_variables),
                  "apply_gradients vs apply")
    _assert_equal(_numpy(opt.variables), _numpy(twin.variables),
                  "optimizer variables")
    # every optimizer variable is non-trainable and uniquely named
    paths = [v.path for v in opt.variables]
    assert len(set(paths)) == len(paths), paths
    assert not any(v.trainable for v in opt.variables)


@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_stateless_apply(spec, config):
    opt = _make(spec, config)
    variables = _variables()
    opt.build(variables)
    if BACKEND == "tensorflow":
        # Keras's TF optimizers do not support it (tf.distribute): the
        # same error as a Keras built-in.
        builtin = keras.optimizers.SGD()
        builtin.build(_variables())
        with pytest.raises(ValueError, match="not supported with the "
                                             "TensorFlow backend"):
            builtin.stateless_apply([], [], [])
        with pytest.raises(ValueError, match="not supported with the "
                                             "TensorFlow backend"):
            opt.stateless_apply([v.value for v in opt.variables],
                                _grads(0), [v.value for v in variables])
        return
    twin = _make(spec, config)
    # torch: a StatelessScope takes the per-variable update_step; the twin
    # too (the multi-tensor path agrees to rounding, tested elsewhere)
    twin.use_multi_tensor = False
    twin_variables = _variables()
    before_opt = _numpy(opt.variables)
    before = _numpy(variables)
    opt_values = [v.value for v in opt.variables]
    values = [v.value for v in variables]
    for t in range(2):
        values, opt_values = opt.stateless_apply(opt_values, _grads(t),
                                                 values)
        twin.apply(_grads(t), twin_variables)
    _assert_equal(_numpy(variables), before, "variables untouched")
    _assert_equal(_numpy(opt.variables), before_opt, "state untouched")
    _assert_equal(_numpy(values), _numpy(twin_variables),
                  "stateless_apply vs apply")
    _assert_equal(_numpy(opt_values), _numpy(twin.variables),
                  "optimizer values")


@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_set_weights_and_own_variables_transfer_state(spec, config):
    source = _make(spec, config)
    source_variables = _variables()
    source.apply(_grads(0), source_variables)
    copies = []
    for how in ("set_weights", "load_own_variables"):
        target = _make(spec, config)
        target_variables = _variables()
        target.build(target_variables)
        for v, value in zip(target_variables, _numpy(source_variables)):
            v.assign(value)
        if how == "set_weights":
            target.set_weights(_numpy(source.variables))
        else:
            store = {}
            source.save_own_variables(store)
            target.load_own_variables(store)
        _assert_equal(_numpy(target.variables), _numpy(source.variables),
                      how)
        copies.append((how, target, target_variables))
    source.apply(_grads(2), source_variables)
    for how, target, target_variables in copies:
        target.apply(_grads(2), target_variables)
        _assert_equal(_numpy(target_variables), _numpy(source_variables),
                      f"{how}: next step")


@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_swap_ema_weights_callback(spec, config):
    """keras.callbacks.SwapEMAWeights swaps the model's weights with the
    optimizer's moving averages and back."""
    model = _tiny_model(_make(spec, config, use_ema=True,
                              ema_momentum=0.5))
    opt = model.optimizer
    for t in range(2):
        rng = np.random.default_rng(t)
        opt.apply([ops.convert_to_tensor(
            rng.normal(size=v.shape).astype("float32"))
            for v in model.trainable_variables], model.trainable_variables)
    raw = _numpy(model.trainable_variables)
    average = _numpy(opt._model_variables_moving_average)
    assert not all(np.array_equal(a, b) for a, b in zip(raw, average))
    callback = keras.callbacks.SwapEMAWeights()
    callback.set_model(model)
    callback.on_test_begin()
    for a, b in zip(_numpy(model.trainable_variables), average):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    callback.on_test_end()
    # Keras's TF swap is arithmetic (a+b, a-b): back to rounding, not bits
    for a, b in zip(_numpy(model.trainable_variables), raw):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    opt.finalize_variable_values(model.trainable_variables)
    for a, b in zip(_numpy(model.trainable_variables), average):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
