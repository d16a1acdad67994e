"""The torch backend's multi-tensor path equals the per-variable path.

On torch, every spec and config runs twice more beside the generic
``update_step`` loop (``use_multi_tensor=False``): with the default path
(torch's fused kernel where it computes our rule, else the foreach program)
and with ``use_multi_tensor="foreach"``. Each run also checks, through the
counter the fast path keeps, that the fast path really ran. On JAX and
TensorFlow the same tests check that it never runs.
"""

import numpy as np
import pytest

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz
from keras_optzoo.optimizers import SlotSpec
from keras_optzoo import fastpath as multi_tensor
from keras_optzoo.optimizers import ZooOptimizer

ON_TORCH = harness.backend() == "torch"
#: Elsewhere both runs take the generic path (what is checked there is that
#: the fast one is never taken): a few steps suffice.
STEPS = 30 if ON_TORCH else 4
LR_CHANGE_AT = STEPS // 2

#: The spec database for the tests below. Off torch every one of them
#: checks only that the fast path is *not* taken (both runs are the generic
#: path): that is a property of the base class, not of an algorithm, so one
#: optimizer covers it there (test_fast_path_only_in_torch_eager_steps keeps
#: checking every optimizer, eager and compiled, on every backend).
SPECS = specs.SPECS if ON_TORCH else specs.SPECS[:1]
ALL_CONFIGS = specs.all_configs() if ON_TORCH else [
    c for c in specs.all_configs() if c.values[0] is SPECS[0]]
#: On torch, an optimizer that declares it cannot take the fast path
#: (``multi_tensor=False`` in its spec: per-tensor norms, matrix math) runs
#: the per-variable loop in both runs, so comparing its runs compares the
#: generic path with itself: it keeps one case per test function below
#: (its first config, default mode), which checks that the path declines
#: and reports "per-variable". (Every optimizer's declared capability is
#: also checked eagerly and compiled by test_fast_path_only_in_torch_eager_steps.)
FAST_SPECS = [s for s in SPECS if s.multi_tensor or not ON_TORCH]


def _config_cases():
    return [c for c in ALL_CONFIGS
            if c.values[0].multi_tensor or not ON_TORCH
            or c.values[1] is c.values[0].configs[0]]


def _mode_cases(modes):
    """(spec, mode) pairs: every mode for a fast-path optimizer, "default"
    for the others (see FAST_SPECS)."""
    return [pytest.param(spec, mode, id=f"{spec.name}-{mode}")
            for spec in SPECS for mode in modes
            if spec in FAST_SPECS or mode == modes[0]]


def _fused(opt):
    """Whether the default torch path is torch's fused kernel, as the class
    declares it (``fused_kernel``)."""
    return multi_tensor.fused.kernel_for(opt) is not None
#: "foreach (out=)": the foreach path with the per-tensor ``out=`` writes
#: it uses for large tensors, forced on the small test tensors
MODES = ["default", "foreach", "foreach (out=)"] if ON_TORCH else ["default"]


def _make(spec, kwargs, mode):
    opt = spec.cls(**kwargs)
    opt.use_multi_tensor = {"generic": False, "default": None,
                            "foreach": "foreach",
                            "foreach (out=)": "foreach",
                            "retrace": "foreach"}[mode]
    if mode == "retrace":  # no recording: _update traced every step,
        opt._multi_tensor.replay = False  # with Python-number scalars
        opt._multi_tensor.device_scalars = False
    return opt


@pytest.fixture(autouse=True)
def _out_of_place_writes(request, monkeypatch):
    """Mode "foreach (out=)": every workspace counts as holding large
    tensors, so new values are written with per-tensor ``out=`` calls."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("mode") \
            == "foreach (out=)":
        monkeypatch.setattr(multi_tensor.Workspace, "LARGE", 0)


def _run(opt, init, grads, lrs=None, before_build=None, dtypes=None):
    """Applies the gradient sequence eagerly; returns (params, variables)."""
    dtypes = dtypes or ["float32"] * len(init)
    variables = [keras.Variable(p.astype(d)) for p, d in zip(init, dtypes)]
    if before_build is not None:
        before_build(opt, variables)
    for t, step in enumerate(grads):
        if lrs is not None and (t == 0 or lrs[t] != lrs[t - 1]):
            opt.learning_rate = lrs[t]
        opt.apply([ops.convert_to_tensor(g.astype(d))
                   for g, d in zip(step, dtypes)], variables)
    return [ops.convert_to_numpy(v) for v in variables], variables


def _lrs(spec, config, steps=STEPS):
    lr = config.kwargs.get("learning_rate",
                           spec.cls().get_config()["learning_rate"])
    if lr is None:  # a computed step size (HFAdafactor's relative step)
        return None
    return [lr * (0.3 if t >= LR_CHANGE_AT else 1.0) for t in range(steps)]


def assert_same_path(fast, generic, init, rtol=1e-6):
    """|fast − generic| <= rtol · (|generic| + max movement), elementwise.

    Rounding-order differences (a fused multiply-add, ``lerp``) leave about
    one float32 ulp of the parameter per step; 1e-6 of the parameter's
    magnitude allows a few of those and nothing more. The movement term
    covers parameters near zero.
    """
    scale = max(float(np.max(np.abs(np.asarray(g, np.float64) - i)))
                for g, i in zip(generic, init))
    assert scale > 0, "the generic path did not move: the check is empty"
    worst = 0.0
    for f, g in zip(fast, generic):
        f = np.asarray(f, np.float64)
        g = np.asarray(g, np.float64)
        allowed = rtol * (np.abs(g) + scale)
        worst = max(worst, float(np.max(np.abs(f - g) / allowed)))
    assert worst <= 1.0, (
        f"multi-tensor path deviates {worst:.2f}x the allowed "
        f"{rtol:g}·(|θ| + {scale:.3e})")


def assert_same_state(fast_opt, generic_opt):
    """All optimizer variables (slots, iterations, EMA) agree too."""
    assert len(fast_opt.variables) == len(generic_opt.variables)
    for a, b in zip(fast_opt.variables, generic_opt.variables):
        assert a.shape == b.shape
        name = b.path
        a = ops.convert_to_numpy(a).astype(np.float64)
        b = ops.convert_to_numpy(b).astype(np.float64)
        np.testing.assert_allclose(
            a, b, rtol=2e-5, atol=1e-6 * float(np.max(np.abs(b), initial=0)),
            err_msg=f"optimizer variable {name}")


def assert_fast_path_ran(opt, updates, mode, fused=False):
    """The counter the fast path keeps: all updates on torch, none else
    (and none for an optimizer that declares it cannot take the path)."""
    state = opt._multi_tensor
    if not ON_TORCH or not opt.supports_multi_tensor:
        assert state.steps == 0
        assert state.kinds == frozenset()
        assert opt.update_path == "per-variable"
        return
    assert opt.update_path == ("fused" if fused and mode == "default"
                               else "foreach")
    assert state.disabled is None, state.disabled
    assert state.steps == updates
    expected = "fused" if fused and mode == "default" else "foreach"
    assert state.kinds == {expected}


def _compare(spec, config, mode, *, steps=STEPS, grad_factor=1.0,
             extra=None, before_build=None, dtypes=None, updates=None):
    kwargs = dict(config.kwargs, **(extra or {}))
    init, grads = harness.problem(config, steps=steps)
    grads = [[grad_factor * g for g in step] for step in grads]
    lrs = _lrs(spec, config, steps)
    generic = _make(spec, kwargs, "generic")
    fast = _make(spec, kwargs, mode)
    expected, _ = _run(generic, init, grads, lrs, before_build, dtypes)
    got, variables = _run(fast, init, grads, lrs, before_build, dtypes)
    assert_same_path(got, expected, init)
    assert_same_state(fast, generic)
    assert generic._multi_tensor.steps == 0
    assert_fast_path_ran(fast, steps if updates is None else updates, mode,
                         fused=_fused(fast))
    return fast, generic, variables


# ------------------------------------------------------------ every config
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec,config", _config_cases())
def test_equals_generic_path(spec, config, mode):
    if not spec.multi_tensor and mode != MODES[0]:
        pytest.skip(f"{spec.name} declines the fast path: one mode checks "
                    "that (FAST_SPECS)")
    _compare(spec, config, mode)


# ------------------------------------------------ Keras base-class features
#: The base-class features run in the default path and the foreach
#: program; "foreach (out=)" changes only how new values are written,
#: which no feature touches (test_equals_generic_path runs it per config).
FEATURE_MODES = MODES[:2]


def _wd_config(spec):
    return next((c for c in spec.configs if c.kwargs.get("weight_decay")),
                spec.configs[0])


@pytest.mark.parametrize("spec,mode", _mode_cases(FEATURE_MODES))
def test_exclude_from_weight_decay(spec, mode):
    """Excluded variables form their own group (no weight decay), as do
    the variables of each update rule (``_rule_for``: MARS's 1-D ones)."""
    mask = [True, False, True, False]

    def exclude(opt, variables):
        opt.exclude_from_weight_decay(
            var_list=[v for v, keep in zip(variables, mask) if not keep])

    fast, _, _ = _compare(spec, _wd_config(spec), mode, before_build=exclude)
    if ON_TORCH and mode == "foreach" and fast.supports_multi_tensor:
        # (and one group per update rule: AdamP's matrices, MARS's vectors)
        assert len(next(iter(fast._multi_tensor.layouts.values())).groups) \
            == len({(keep and bool(fast.weight_decay),
                     fast._rules[i])
                    for i, keep in enumerate(mask)})


@pytest.mark.parametrize("spec,mode", _mode_cases(FEATURE_MODES))
def test_gradient_accumulation(spec, mode):
    k = 3
    _compare(spec, _wd_config(spec), mode, steps=k * STEPS // 2,
             extra={"gradient_accumulation_steps": k}, updates=STEPS // 2)


@pytest.mark.parametrize("spec,mode", _mode_cases(FEATURE_MODES))
def test_ema(spec, mode):
    """The averages are optimizer variables: compared with the rest."""
    fast, _, _ = _compare(spec, spec.configs[0], mode,
                          extra={"use_ema": True, "ema_momentum": 0.8})
    assert any("average" in v.path for v in fast.variables)


@pytest.mark.parametrize("spec,mode", _mode_cases(FEATURE_MODES))
def test_clipnorm(spec, mode):
    _compare(spec, spec.configs[0], mode, grad_factor=3.0,
             extra={"clipnorm": 1.0})


@pytest.mark.parametrize("spec,mode", _mode_cases(FEATURE_MODES))
def test_dtype_groups(spec, mode):
    """float64 and float32 variables in one list: one group per dtype."""
    dtypes = ["float32", "float64", "float32", "float64"]
    fast, _, variables = _compare(spec, _wd_config(spec), mode,
                                  dtypes=dtypes)
    if ON_TORCH and fast.supports_multi_tensor:  # (JAX: no float64)
        assert [v.dtype for v in variables] == dtypes
        layout = next(iter(fast._multi_tensor.layouts.values()))
        # one group per (update rule, dtype) present
        pairs = {(fast._rules[i], dtypes[i]) for i in range(4)}
        assert sorted(str(g.dtype) for g in layout.groups) == sorted(
            f"torch.{dtype}" for _, dtype in pairs)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_half_precision_variables_keep_the_per_variable_path(spec):
    """torch's foreach kernels round differently in float16/bfloat16: those
    variables take update_step (bit-equal), the float32 ones the fast path."""
    config = spec.configs[0]
    dtypes = ["float16", "float32", "bfloat16", "float32"]
    init, grads = harness.problem(config, steps=6)
    results, opts = [], []
    for mode in ("generic", "default"):
        opt = _make(spec, config.kwargs, mode)
        results.append(_run(opt, init, grads, dtypes=dtypes)[0])
        opts.append(opt)
    for i in (0, 2):
        np.testing.assert_array_equal(results[1][i], results[0][i])
    assert_same_path([results[1][i] for i in (1, 3)],
                     [results[0][i] for i in (1, 3)], [init[1], init[3]])
    assert_fast_path_ran(opts[1], 6, "default", fused=_fused(opts[1]))
    if ON_TORCH and opts[1].supports_multi_tensor:
        layout = next(iter(opts[1]._multi_tensor.layouts.values()))
        assert layout.rest == [0, 2]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_overwrite_with_gradient_variable(spec):
    """Keras writes such a variable itself; the others take the fast path."""
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=10)
    results = []
    for mode in ("generic", "default"):
        opt = _make(spec, config.kwargs, mode)
        variables = [keras.Variable(p) for p in init]
        variables[1].overwrite_with_gradient = True
        for step in grads:
            opt.apply([ops.convert_to_tensor(g) for g in step], variables)
        results.append([ops.convert_to_numpy(v) for v in variables])
        np.testing.assert_array_equal(results[-1][1], grads[-1][1])
    assert_same_path(results[1], results[0], init)
    assert_fast_path_ran(opt, 10, "default", fused=_fused(opt))


@pytest.mark.skipif(not ON_TORCH, reason="the fast path is torch-only; "
                    "off torch the generic tests cover caution")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,index", [("adamw", 0), ("adam", 2)])
def test_cautious_adam_equals_generic_path(name, index, mode):
    """Adam/AdamW(caution=True) (not in the spec database, see
    tests/test_caution.py): the mask's per-tensor mean is a reduction of the
    foreach program (torch's fused kernel is not used)."""
    spec = specs.SPECS_BY_NAME[name]
    fast, _, _ = _compare(spec, spec.configs[index], mode,
                          extra={"caution": True})
    assert fast.update_path == "foreach"


def _absent_rows(grads):
    """The problem's gradients with absent rows: an all-zero row (first
    axis: unnamed variables keep the torch layout) of the (3, 4) and
    (2, 3, 2) variables, a zero element of the vector, a zero 0-d gradient
    every other step, and one NaN element late in the run."""
    out = []
    for t, step in enumerate(grads):
        step = [np.array(g) for g in step]
        step[0][t % 3] = 0.0
        step[1][(t + 1) % 5] = 0.0
        if t % 2:
            step[2] = np.zeros_like(step[2])
        step[3][t % 2] = 0.0
        if t == len(grads) - 3:
            step[3][1 - t % 2, 1, 0] = np.nan
        out.append(step)
    return out


@pytest.mark.skipif(not ON_TORCH, reason="the fast path is torch-only; "
                    "off torch the generic tests and tests/test_sparse.py "
                    "cover LazyAdam's rows")
@pytest.mark.parametrize("mode", MODES)
def test_lazyadam_absent_rows_equal_generic_path(mode):
    """LazyAdam on gradients with absent rows and elements (and a NaN, a
    present element): the fast path's row masks (sums along each tensor's
    row axes) and zeroed changes give the per-variable ``where``'s values,
    bit for bit (NaN included)."""
    spec = specs.SPECS_BY_NAME["lazyadam"]
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=12)
    grads = _absent_rows(grads)
    results, opts = [], []
    for which in ("generic", mode):
        opt = _make(spec, config.kwargs, which)
        results.append(_run(opt, init, grads)[0])
        opts.append(opt)
    for fast, generic in zip(results[1], results[0]):
        np.testing.assert_array_equal(fast, generic)
    assert_fast_path_ran(opts[1], 12, mode)
    assert opts[1]._multi_tensor.replayed > 0


def _kernels_per_step(opt, n_tensors, matrix=(4, 3)):
    """The torch operator calls (ATen ops, on the CPU) of one step of
    ``opt`` on ``n_tensors`` variables (matrices of shape ``matrix`` and
    vectors), after warm-up steps (the trace and its recording happen on
    the first)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile

    rng = np.random.default_rng(0)
    shapes = [matrix if i % 2 else (5,) for i in range(n_tensors)]
    variables = [keras.Variable(rng.standard_normal(s).astype("float32"))
                 for s in shapes]
    grads = [ops.convert_to_tensor(rng.standard_normal(s).astype("float32"))
             for s in shapes]
    for _ in range(3):
        opt.apply(grads, variables)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt.apply(grads, variables)
    assert opt.update_path in ("foreach", "fused")
    # top-level operators only: a foreach kernel's per-tensor fallback on
    # the CPU shows up as children of the one foreach call
    return sum(1 for e in prof.events()
               if e.name.startswith("aten::") and e.cpu_parent is None)


@pytest.mark.skipif(not ON_TORCH, reason="the fast path is torch-only")
@pytest.mark.parametrize("make,matrix", [
    pytest.param(lambda: oz.Adam(learning_rate=1e-3), (4, 3), id="adam"),
    pytest.param(lambda: oz.AdamW(learning_rate=1e-3, caution=True),
                 (4, 3), id="adamw-caution"),
    pytest.param(lambda: oz.Lamb(learning_rate=1e-3, max_grad_norm=None),
                 (4, 3), id="lamb"),
    pytest.param(lambda: oz.NovoGrad(learning_rate=1e-3), (4, 3),
                 id="novograd"),
    # (the matrices of each: one batched Newton-Schulz for all of them,
    # NorMuon's row normalisation inside it; AdaMuon's routing (timm's)
    # gives matrices below (4, 4) its AdamW)
    pytest.param(lambda: oz.Muon(learning_rate=1e-3), (4, 3), id="muon"),
    pytest.param(lambda: oz.NorMuon(), (4, 3), id="normuon"),
    pytest.param(lambda: oz.AdaMuon(), (8, 4), id="adamuon"),
])
def test_kernels_per_step_do_not_grow_with_tensors(make, matrix):
    """The foreach path launches a number of operators per step that does
    not depend on the number of tensors (torch.profiler on the CPU as the
    proxy for kernel launches; the per-variable loop adds ~20 per tensor).
    The reductions here (norms, the mean of a 0/1 mask, a sum of squares)
    are one ``_foreach_norm`` each. (Lamb's default global-norm clipping is
    left out: its statistics are gathered per variable before the update,
    one operator per tensor.)"""
    few = _kernels_per_step(make(), 10, matrix)
    many = _kernels_per_step(make(), 40, matrix)
    assert many <= few + 2, (few, many)


@pytest.mark.skipif(not ON_TORCH, reason="the fast path is torch-only")
@pytest.mark.parametrize("cls,kwargs", [
    pytest.param(oz.NorMuon, {}, id="normuon"),
    pytest.param(oz.NorMuon, {"update_scale": "match_rms",
                              "weight_decay": 0.1, "nesterov": False},
                 id="normuon-match_rms"),
    pytest.param(oz.AdaMuon, {"weight_decay": 0.1}, id="adamuon"),
    pytest.param(oz.AdaMuon, {"adjust_lr_fn": "rms_to_rms"},
                 id="adamuon-rms_to_rms"),
])
def test_matrix_rules_through_layouts_equal_generic_path(cls, kwargs):
    """NorMuon's and AdaMuon's matrix rules on Dense and Conv2D kernels
    (read as torch's flattened matrices, ``Layout.matrix``), two of one
    shape (one batched call) and others (one call each, a learning-rate
    ratio per tensor), beside a vector: the fast path equals the
    per-variable path and replays. (The spec database's arrays have
    identity layouts, and timm's routing gives AdaMuon's fallback all of
    them.)"""
    shapes = [(8, 16), (24, 8), (8, 16), (3, 3, 4, 8), (8,)]
    names = ["kernel"] * 4 + ["bias"]
    config = specs.Config("layouts", kwargs)
    init, grads = harness.problem(config, steps=10, shapes=shapes)
    lrs = [0.02 if t < 5 else 0.006 for t in range(10)]
    runs = {}
    for mode in (False, None):
        opt = cls(learning_rate=0.02, **kwargs)
        opt.use_multi_tensor = mode
        runs[mode] = harness.run_ours(opt, init, grads, lrs, names=names)
    assert opt.rules[:4] == [opt.matrix_rule] * 4
    assert opt.update_path == "foreach"
    assert opt._multi_tensor.replayed == 9 * 2  # both groups, steps 2-10
    assert_same_path(runs[None], runs[False], init)


@pytest.mark.skipif(not ON_TORCH, reason="the replay is torch's")
def test_where_conditions_guard_the_recording_on_the_cpu():
    """On the CPU a recording reads each ``where`` condition on the host
    (one branch computed) and keeps it as a guard: a replay whose condition
    differs traces and records the step again. RAdam's rectification starts
    once (rho_t > 5 at step 6), ADOPT's and Lars's first-step ``where`` ends
    after step 1: one miss each, every other step replayed, at any size
    (these used to be traced every step); the results equal the
    per-variable path (``test_fast_path_equals_generic``)."""
    cases = ((oz.RAdam, {}, (100, 1)), (oz.RAdam, {}, (40000, 1)),
             (oz.RAdam, {}, (10, 65)), (oz.ADOPT, {}, (100, 3)),
             (oz.Lars, {"momentum": 0.9, "weight_decay": 1e-4}, (100, 3)))
    for cls, kwargs, (size, count) in cases:
        variables = [keras.Variable(np.ones((size,), "float32"))
                     for _ in range(count)]
        grads = [ops.ones((size,), "float32")] * count
        opt = cls(learning_rate=1e-3, **kwargs)
        for _ in range(10):
            opt.apply(grads, variables)
        state = opt._multi_tensor
        assert opt.update_path == "foreach"
        assert (state.guard_misses, state.replayed, state.declined) == (
            1, 8, False), (cls.__name__, size, count)


@pytest.mark.parametrize("mode", MODES)
def test_per_variable_scalar_slots_that_differ(mode):
    """NAdam's mu_product goes apart when only some variables are updated:
    the fast path then carries one value per variable."""
    spec = specs.SPECS_BY_NAME["nadam"]
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=15)
    results, opts = [], []
    for which in ("generic", mode):
        opt = _make(spec, config.kwargs, which)
        variables = [keras.Variable(p) for p in init]
        for t, step in enumerate(grads):
            tensors = [ops.convert_to_tensor(g) for g in step]
            if 5 <= t < 10:  # only the first two variables
                opt.apply(tensors[:2], variables[:2])
            else:
                opt.apply(tensors, variables)
        results.append([ops.convert_to_numpy(v) for v in variables])
        opts.append(opt)
    mu = [float(ops.convert_to_numpy(s)) for s in opts[0]._slots["mu_product"]]
    assert mu[0] != mu[2], "the scalar slots did not go apart"
    assert_same_path(results[1], results[0], init)
    assert_same_state(opts[1], opts[0])
    assert_fast_path_ran(opts[1], 15, mode)


# --------------------------------------------------- planner corner cases
def _custom_optimizer(slots, update):
    """A ZooOptimizer whose ``_update`` is ``update(opt, p, g, state, lr)``."""

    class Custom(ZooOptimizer):
        def _slot_specs(self):
            return [SlotSpec(name, 0.5, scalar=name.startswith("count"))
                    for name in slots]

        def _update(self, param, grad, state, lr, index):
            return update(self, param, grad, state, lr)

    return Custom


def _late_read(o, p, g, s, lr):
    new = s["avg"] * 0.9 + g  # could be computed inside the slot ...
    step = new - s["avg"]  # ... were the old value not read afterwards
    return p - lr * step, {"avg": new}


def _swap(o, p, g, s, lr):
    # update_step assigns "b" before copying the (aliased) old "b" into "a"
    return p - lr * (s["a"] - s["b"] + g), {"b": s["a"] + g, "a": s["b"]}


def _reflected(o, p, g, s, lr):
    m = o._math
    return p - lr * ((1.0 - g) + 3.0 / (2.0 + m.abs(g))), {}


def _elementwise(o, p, g, s, lr):
    m = o._math
    clipped = m.minimum(m.maximum(g, -0.5), 0.5)
    shaped = m.sign(g) ** 2 * m.exp(-m.abs(g)) + m.log(1.0 + m.square(g))
    return p - lr * (clipped + shaped + m.negative(g) / 4.0), {}


def _casts_and_branches(o, p, g, s, lr):
    m = o._math
    rounded = m.cast(m.cast(g, "float16"), "float32")
    flip = m.where(ops.equal(o.iterations % 2, 0), rounded, -rounded)
    return p - lr * flip, {"kept": s["kept"]}


def _scalar_slot(o, p, g, s, lr):
    count = s["count"] + 1.0
    return p - lr * g / ops.cast(count, g.dtype), {"count": count}


CORNER_CASES = {
    "late_read_of_old_slot": (["avg"], _late_read),
    "swapped_slots": (["a", "b"], _swap),
    "reflected_operators": ([], _reflected),
    "elementwise_functions": ([], _elementwise),
    "casts_and_branches": (["kept"], _casts_and_branches),
    "scalar_slot": (["count"], _scalar_slot),
}


@pytest.mark.parametrize("mode", MODES[1:] or MODES)
@pytest.mark.parametrize("case", sorted(CORNER_CASES))
def test_planner_corner_cases(case, mode):
    """Operand orders, aliasing and ops no built-in optimizer exercises."""
    slots, update = CORNER_CASES[case]
    cls = _custom_optimizer(slots, update)
    config = specs.Config(case, {})
    init, grads = harness.problem(config, steps=12)
    results, opts = [], []
    for which in ("generic", mode):
        opt = cls(learning_rate=0.05)
        opt.use_multi_tensor = {"generic": False, "default": None}.get(
            which, "foreach")
        results.append(_run(opt, init, grads)[0])
        opts.append(opt)
    assert_same_path(results[1], results[0], init)
    assert_same_state(opts[1], opts[0])
    assert_fast_path_ran(opts[1], 12, "foreach")


# ------------------------------------------------------------- fallbacks
class _ClippedSGD(oz.SGD):
    """An `_update` using an op a TensorList does not support (ops.clip)."""

    def _update(self, param, grad, state, lr, index):
        return param - lr * ops.clip(grad, -0.5, 0.5), {}


def test_unsupported_update_falls_back_with_one_warning():
    config = specs.SPECS_BY_NAME["sgd"].configs[0]
    init, grads = harness.problem(config, steps=5)
    opt = _ClippedSGD(learning_rate=0.1)
    if ON_TORCH:
        with pytest.warns(UserWarning, match="per-variable update_step"):
            ours, _ = _run(opt, init, grads)
        assert opt._multi_tensor.disabled
    else:
        ours, _ = _run(opt, init, grads)
    assert opt._multi_tensor.steps == 0
    expected = [p.astype(np.float64) for p in init]
    for step in grads:
        expected = [p - 0.1 * np.clip(g, -0.5, 0.5)
                    for p, g in zip(expected, step)]
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    harness.backend() == "tensorflow",
    reason="Keras's TF optimizer writes its tf.Variables even in a "
           "StatelessScope (its stateless_apply raises): nothing to check")
def test_stateless_scope_takes_the_generic_path():
    """In a StatelessScope (JAX's stateless_apply, torch's stateless_call) a
    variable's value is not its storage: the fast path must not write it."""
    spec = specs.SPECS_BY_NAME["adam"]
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=5)
    expected, _ = _run(_make(spec, config.kwargs, "generic"), init, grads)
    opt = _make(spec, config.kwargs, "default")
    variables = [keras.Variable(p) for p in init]
    opt.build(variables)
    tracked = list(variables) + list(opt.variables)
    values = [v.value for v in tracked]
    for step in grads:
        with keras.StatelessScope(
                state_mapping=list(zip(tracked, values))) as scope:
            opt.apply([ops.convert_to_tensor(g) for g in step], variables)
        values = [scope.get_current_value(v) for v in tracked]
    assert opt._multi_tensor.steps == 0
    for variable, p in zip(variables, init):  # untouched
        np.testing.assert_array_equal(ops.convert_to_numpy(variable), p)
    got = [ops.convert_to_numpy(v) for v in values[:len(variables)]]
    assert_same_path(got, expected, init)


def test_plain_vector_is_not_taken_for_per_variable_scalars():
    """A 1-D tensor as long as the group is broadcast by update_step; the
    fast path must not read it as one scalar per variable (it declines)."""
    weights = ops.convert_to_tensor(np.arange(1.0, 5.0, dtype="float32"))
    cls = _custom_optimizer([], lambda o, p, g, s, lr: (p - lr * g * weights,
                                                       {}))
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(4,)).astype("float32") for _ in range(4)]
    grads = [[rng.normal(size=(4,)).astype("float32") for _ in range(4)]
             for _ in range(3)]
    opt = cls(learning_rate=0.1)
    if ON_TORCH:
        with pytest.warns(UserWarning, match="per-variable update_step"):
            ours, _ = _run(opt, init, grads)
    else:
        ours, _ = _run(opt, init, grads)
    assert opt._multi_tensor.steps == 0
    expected = [p - 0.1 * sum(step[i] for step in grads) * np.arange(1, 5)
                for i, p in enumerate(init)]
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_bad_use_multi_tensor_value():
    opt = oz.Adam()
    opt.use_multi_tensor = "always"
    variables = [keras.Variable(np.ones(3, "float32"))]
    with pytest.raises(ValueError, match="`use_multi_tensor` must be None"):
        opt.apply([ops.ones((3,))], variables)


def test_hook_declines_off_torch():
    """On JAX/TF the hook answers False without touching anything; on torch
    it applies the update itself."""
    opt = oz.Adam(learning_rate=0.1)
    variables = [keras.Variable(np.ones(3, "float32"))]
    opt.build(variables)
    took = opt._multi_tensor_update([ops.ones((3,))], variables,
                                    opt.learning_rate)
    assert took is ON_TORCH
    moved = not np.allclose(ops.convert_to_numpy(variables[0]), 1.0)
    assert moved is ON_TORCH


@pytest.mark.parametrize("mode", harness.modes())
@pytest.mark.parametrize("spec", specs.base_feature_specs(),
                         ids=lambda s: s.name)
def test_fast_path_only_in_torch_eager_steps(spec, mode):
    """JAX's jitted stateless_apply and TF's XLA step keep to update_step.

    Every optimizer on torch; one per state mechanism on JAX and TF
    (specs.base_feature_specs): there the hook answers from the backend
    alone, before it reads anything of the optimizer
    (test_hook_declines_off_torch), so one optimizer per mechanism shows
    it in both modes (an eager run and an XLA compile per optimizer were
    ~50-70 s of those suites)."""
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=3)
    opt = spec.cls(**config.kwargs)
    harness.run_ours(opt, init, grads, mode=mode)
    taken = ON_TORCH and opt.supports_multi_tensor
    assert opt._multi_tensor.steps == (3 if taken else 0)


# ------------------------------------------------------------------ fit
def test_fit_takes_the_fast_path_and_matches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = rng.normal(size=(96, 1)).astype("float32")
    weights = []
    for mode in ("generic", "default"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)),
                                  keras.layers.Dense(16, activation="tanh"),
                                  keras.layers.Dense(1)])
        opt = _make(specs.SPECS_BY_NAME["nadam"], {"learning_rate": 0.01},
                    mode)
        model.compile(optimizer=opt, loss="mse",
                      jit_compile=harness.backend() != "torch")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        weights.append([ops.convert_to_numpy(w) for w in model.weights])
    for a, b in zip(weights[1], weights[0]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert opt._multi_tensor.steps == (12 if ON_TORCH else 0)


# ------------------------------------------------------------- lean step
@pytest.mark.skipif(not ON_TORCH, reason="the lean step is torch's")
@pytest.mark.parametrize("spec,config", specs.default_configs())
def test_lean_step_equals_apply(spec, config):
    """The lean step (no Keras ``apply()`` bookkeeping), taken by
    ``opt.apply`` itself and by ``fastpath.lean_step``, gives variables and
    optimizer state bit-identical to Keras's own ``apply``."""
    init, grads = harness.problem(config, steps=8)
    lrs = _lrs(spec, config, 8)
    results = []
    for how in ("keras", "apply", "lean_step"):
        opt = spec.cls(**config.kwargs)
        variables = [keras.Variable(p) for p in init]
        opt.build(variables)
        step = multi_tensor.lean_step(opt, variables)
        if step is None:
            pytest.skip(f"{spec.name} overrides apply")
        for t, g in enumerate(grads):
            if t == 0 or lrs[t] != lrs[t - 1]:
                opt.learning_rate = lrs[t]
            tensors = [ops.convert_to_tensor(x) for x in g]
            if how == "keras":  # Keras's apply, all of its bookkeeping
                keras.optimizers.Optimizer.apply(opt, tensors, variables)
            elif how == "apply":
                opt.apply(tensors, variables)
            else:
                step(tensors)
        if how == "apply":
            assert opt._lean_verdict[1], "apply did not take the lean step"
        assert int(opt.iterations) == len(grads)
        results.append([ops.convert_to_numpy(v) for v in variables]
                       + [ops.convert_to_numpy(v) for v in opt.variables])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.skipif(not ON_TORCH, reason="the lean step is torch's")
@pytest.mark.parametrize("kwargs", [
    {"use_ema": True}, {"clipnorm": 1.0}, {"global_clipnorm": 1.0},
    {"clipvalue": 1.0}, {"gradient_accumulation_steps": 2},
    {"loss_scale_factor": 4.0}], ids=lambda k: next(iter(k)))
def test_lean_step_declines_keras_bookkeeping(kwargs):
    opt = oz.Adam(**kwargs)
    variables = [keras.Variable(np.ones(3, "float32"))]
    opt.build(variables)
    assert multi_tensor.lean_step(opt, variables) is None
    grads = [ops.convert_to_tensor(np.ones(3, "float32"))]
    assert not multi_tensor.lean.try_apply(opt, grads, variables)


@pytest.mark.skipif(not ON_TORCH, reason="the lean step is torch's")
def test_apply_leaves_the_lean_step_where_keras_must_act():
    """A gradient of None, a subset of the variables, a variable with a
    constraint: ``apply`` goes through Keras's bookkeeping, as it must."""
    variables = [keras.Variable(np.ones(3, "float32")),
                 keras.Variable(np.ones(2, "float32"))]
    opt = oz.SGD(learning_rate=0.5)
    opt.build(variables)
    g = [ops.convert_to_tensor(np.ones(3, "float32")),
         ops.convert_to_tensor(np.ones(2, "float32"))]
    assert not multi_tensor.lean.try_apply(opt, [g[0], None], variables)
    assert not multi_tensor.lean.try_apply(opt, g[:1], variables[:1])
    with pytest.warns(UserWarning, match="[Gg]radients do not exist"):
        opt.apply([g[0], None], variables)  # Keras filters the None
    np.testing.assert_array_equal(ops.convert_to_numpy(variables[1]),
                                  np.ones(2, "float32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(variables[0]),
                                  np.full(3, 0.5, "float32"))
    constrained = keras.Variable(np.ones(2, "float32"))
    opt = oz.SGD(learning_rate=2.0)
    opt.build([constrained])
    g = [ops.convert_to_tensor(np.ones(2, "float32"))]
    assert multi_tensor.lean.try_apply(opt, g, [constrained])  # 1 -> -1
    # a constraint set after build (and after lean steps) is still applied
    constrained.constraint = keras.constraints.NonNeg()
    assert not multi_tensor.lean.try_apply(opt, g, [constrained])
    opt.apply(g, [constrained])
    np.testing.assert_array_equal(ops.convert_to_numpy(constrained),
                                  np.zeros(2, "float32"))  # clamped at 0


@pytest.mark.skipif(not ON_TORCH, reason="the lean step is torch's")
def test_lean_step_declines_when_keras_internals_moved(monkeypatch):
    """The lean step mirrors a private Keras class: if a Keras release
    moves it, ``apply`` takes Keras's own path (same result), not an
    ImportError."""
    import sys

    variables = [keras.Variable(np.ones(3, "float32"))]
    opt = oz.SGD(learning_rate=0.5)
    opt.build(variables)
    g = [ops.convert_to_tensor(np.ones(3, "float32"))]
    monkeypatch.setitem(sys.modules, "keras.src.optimizers.base_optimizer",
                        None)  # import raises ImportError
    assert not multi_tensor.lean.try_apply(opt, g, variables)
    opt.apply(g, variables)
    np.testing.assert_array_equal(ops.convert_to_numpy(variables[0]),
                                  np.full(3, 0.5, "float32"))


@pytest.mark.skipif(not ON_TORCH, reason="the fast path is torch's")
def test_fast_path_declines_when_keras_scopes_moved(monkeypatch):
    """The fast path writes variables in place only outside Keras's
    stateless and autocast scopes, read from private ``keras.src.backend``;
    if a Keras release moves them, the per-variable path runs (same
    result) instead of writing where Keras might not look."""
    from keras_optzoo.fastpath import runner

    init, grads = harness.problem(specs.Config("c", {}), steps=3)
    expected, _ = _run(oz.Adam(), init, grads)
    monkeypatch.setattr(runner, "_SCOPES", None)  # as after the ImportError
    opt = oz.Adam()
    ours, _ = _run(opt, init, grads)
    assert opt.update_path == "per-variable"
    for a, b in zip(ours, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- replay
@pytest.mark.skipif(not ON_TORCH, reason="the replay is torch's")
@pytest.mark.parametrize("spec,config", specs.default_configs())
def test_replay_is_used(spec, config):
    """After the first (recorded) trace, the foreach path replays the
    scalar math instead of re-running ``_update`` (``fastpath/replay.py``);
    test_equals_generic_path checks the result."""
    opt = spec.cls(**config.kwargs)
    if not (spec.multi_tensor and opt.supports_multi_tensor) or _fused(opt):
        pytest.skip("no foreach path by default")
    init, grads = harness.problem(config, steps=4)
    _run(opt, init, grads)
    state = opt._multi_tensor
    assert not state.declined
    if opt._has_step_statistics() and not getattr(
            opt, "replay_step_statistics", False):
        # scalars computed each step outside _update from every gradient
        # (Prodigy's d) cannot be replayed from a recording of _update:
        # such an optimizer is traced every step (runner._replayable);
        # Lamb's clip factor is refreshed in a kept tensor the recording
        # reads (runner._pin_step_statistics)
        assert state.replayed == 0
        return
    assert state.not_replayed is None, state.not_replayed
    groups = len(next(iter(state.layouts.values())).groups)
    # a first-step ``where`` (ADOPT, Lars, MADGRAD, Rprop, MARS) is a guard
    # whose condition changes once: that group's second step traces again
    assert state.guard_misses <= groups
    assert state.replayed + state.guard_misses == 3 * groups


@pytest.mark.skipif(not ON_TORCH, reason="the replay is torch's")
def test_replay_follows_a_changed_hyperparameter():
    """A Python hyperparameter changed between steps re-traces."""
    spec = specs.SPECS_BY_NAME["rmsprop"]
    config = spec.configs[0]
    init, grads = harness.problem(config, steps=8)
    results = []
    for mode in ("generic", "default"):
        opt = _make(spec, config.kwargs, mode)
        variables = [keras.Variable(p) for p in init]
        for t, step in enumerate(grads):
            if t == 4:
                opt.rho = 0.5
            opt.apply([ops.convert_to_tensor(g) for g in step], variables)
        results.append([ops.convert_to_numpy(v) for v in variables])
    assert opt._multi_tensor.replayed == 6  # steps 2-4 and 6-8
    assert_same_path(results[1], results[0], init)


@pytest.mark.skipif(not ON_TORCH, reason="the replay is torch's")
@pytest.mark.parametrize("spec,config", specs.default_configs())
def test_without_replay_equals_generic_path(spec, config):
    """``replay = False`` and ``device_scalars = False``: the update is
    traced every step with Python-number scalars (host reads allowed)."""
    fast, _, _ = _compare(spec, config, "retrace", steps=8)
    if spec.multi_tensor and fast.supports_multi_tensor:
        assert fast._multi_tensor.replayed == 0


@pytest.mark.skipif(not ON_TORCH, reason="counts the torch fast path's "
                    "operators; JAX and TF compile their own programs")
@pytest.mark.parametrize("name", ["adamax", "radam", "asgd", "lars",
                                  "novograd", "adabelief", "adan", "adopt",
                                  "ademamix", "madgrad", "laprop", "mars",
                                  "stableadamw", "adopt_cautious",
                                  "ademamix_cautious", "hfadafactor", "came",
                                  "lazyadam", "lion"])
def test_memory_traffic_at_most_the_references(name):
    """One step of the fast path reads and writes parameter-sized tensors
    no more often than the leanest variant of the reference it is tested
    against (``benchmarks/kernel_count.py``: exact counts from the
    operators' schemas, not timings; 1e5 parameters in 10 matrices). The
    mechanisms behind these: a reduction's sub-graph as a planned program
    (NovoGrad, MARS, caution), a guard for RAdam's ``where``, a per-tensor
    axpy alpha (ASGD), ``clamp`` for ``zero_where``, outputs written into
    their storage (LaProp), the factored statistics (HFAdafactor, CAME),
    one ``out=`` call per large CPU tensor instead of a copy and an
    in-place kernel. Optimizers still above their reference (Rprop,
    Adafactor, Lamb, AdamP, SGDP, the Muon family) are listed in issue 19's
    notes, not here."""
    from benchmarks import kernel_count

    counts = kernel_count.count(name, 100_000)
    ours = counts.pop("zoo")
    leanest = min(counts.items(), key=lambda item: item[1][2])
    assert ours[2] <= leanest[1][2], (ours, leanest)
