"""No host synchronisation in a step, and no float64 math on the device.

torch: after the first (building) step the multi-tensor path keeps every
scalar on the parameters' device (``fastpath.State.device_scalars``, the
default off the CPU): no ``.item()``, ``float()``, ``bool()`` of a tensor.

* On CUDA, ``torch.cuda.set_sync_debug_mode("error")`` around a few steps of
  every optimizer that supports the multi-tensor path (skipped, with that
  reason, without CUDA).
* Everywhere (the CPU proxy): the accelerator code path, forced on the CPU
  with ``device_scalars = True``, runs a few steps while ``Tensor.item``,
  ``tolist``, ``__float__``, ``__int__``, ``__bool__`` raise, for every
  spec config with ``multi_tensor=True``; its result equals the
  per-variable path.

JAX and TensorFlow: the compiled step (``jax.jit(stateless_apply)``'s HLO,
TF's XLA HLO of a ``jit_compile`` step) of every optimizer holds no f64
value when the variables are float32; an optimizer that declares
``float64_scalars`` (schedule-free: its reference's host-side doubles)
holds f64 scalars only, no f64 array of more than one element.
"""

import contextlib
import math
import re

import pytest

import keras
from keras import ops

import harness
import specs

BACKEND = harness.backend()
STEPS = 5

MULTI = [c for c in specs.all_configs()
         if c.values[0].multi_tensor and c.values[0].cls.supports_multi_tensor]
DEFAULTS = specs.default_configs()


@contextlib.contextmanager
def _no_host_reads():
    """Every Python-level read of a tensor's value raises."""
    import torch

    def refuse(name):
        def method(self, *args, **kwargs):
            raise AssertionError(f"host read: Tensor.{name} during a step")
        return method

    names = ("item", "tolist", "__float__", "__int__", "__bool__",
             "__index__")
    saved = {n: getattr(torch.Tensor, n) for n in names}
    try:
        for n in names:
            setattr(torch.Tensor, n, refuse(n))
        yield
    finally:
        for n, fn in saved.items():
            setattr(torch.Tensor, n, fn)


def _steps(opt, init, grads, lrs, guard, first_unguarded=True):
    variables = [keras.Variable(p) for p in init]
    for t, step in enumerate(grads):
        if lrs is not None and (t == 0 or lrs[t] != lrs[t - 1]):
            opt.learning_rate = lrs[t]
        tensors = [ops.convert_to_tensor(g) for g in step]
        ctx = contextlib.nullcontext() if (t == 0 and first_unguarded) \
            else guard()
        with ctx:
            opt.apply(tensors, variables)
    return [ops.convert_to_numpy(v) for v in variables]


def _lrs(spec, config):
    lr = config.kwargs.get("learning_rate",
                           spec.cls().get_config()["learning_rate"])
    if lr is None:
        # HFAdafactor's relative step: its step size is computed, no
        # learning rate to change
        return None
    return [lr * (0.5 if t >= 3 else 1.0) for t in range(STEPS)]


@pytest.mark.skipif(BACKEND != "torch", reason="host reads of the torch "
                    "multi-tensor path; JAX and TF compile the whole step "
                    "(their checks are the f64 tests below)")
@pytest.mark.parametrize("spec,config", MULTI)
def test_torch_device_scalars_no_host_read(spec, config, monkeypatch):
    """The accelerator code path, on the CPU: no host read after the
    building step, and the same result as the per-variable path."""
    from test_multi_tensor import assert_same_path

    from keras_optzoo.fastpath import compiler

    # the kernels' forms for tensor scalars off the CPU, here too
    monkeypatch.setattr(compiler, "_cpu_scalars", lambda buf, c: None)

    init, grads = harness.problem(config, steps=STEPS)
    lrs = _lrs(spec, config)
    generic = spec.cls(**config.kwargs)
    generic.use_multi_tensor = False
    expected = _steps(generic, init, grads, lrs, contextlib.nullcontext)
    fast = spec.cls(**config.kwargs)
    if not fast.supports_multi_tensor:
        pytest.skip("this configuration keeps the per-variable path")
    fast._multi_tensor.device_scalars = True
    got = _steps(fast, init, grads, lrs, _no_host_reads)
    state = fast._multi_tensor
    assert state.disabled is None, state.disabled
    assert state.steps == STEPS
    assert_same_path(got, expected, init)


@pytest.mark.skipif(BACKEND != "torch", reason="CUDA syncs of the torch "
                    "multi-tensor path, which only the torch backend runs")
def test_torch_cuda_no_sync():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: torch.cuda.set_sync_debug_mode checks "
                    "device-to-host synchronisations (the CPU proxy test "
                    "above runs the same code path everywhere)")
    failures = []
    for param in specs.default_configs():
        spec, config = param.values
        if not (spec.multi_tensor and spec.cls.supports_multi_tensor):
            continue
        init, grads = harness.problem(config, steps=STEPS)
        opt = spec.cls(**config.kwargs)
        if not opt.supports_multi_tensor:
            continue

        @contextlib.contextmanager
        def sync_errors():
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode("default")

        try:
            _steps(opt, init, grads, _lrs(spec, config), sync_errors)
        except RuntimeError as error:
            failures.append(f"{spec.name}: {error}")
            continue
        assert opt._multi_tensor.steps == STEPS, spec.name
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------ JAX and TF
_F64 = re.compile(r"\bf64\b|f64\[")
#: the shapes of f64 arrays in an HLO line ("f64[3,4]" -> "3,4")
_F64_SHAPE = re.compile(r"f64\[([\d,]*)\]")


def _many(dims):
    return math.prod(int(d) for d in dims.split(",") if d) > 1


def _f64_lines(text, spec):
    """The HLO lines with float64 values the step must not hold: any, or,
    for an optimizer that declares ``float64_scalars`` (the schedule-free
    optimizers compute their reference's host-side doubles as float64
    scalars, a few per param group and step; XLA may hold one as an
    ``f64[1]`` slice), any float64 array of more than one element."""
    if not getattr(spec.cls, "float64_scalars", False):
        return sorted(set(line.strip() for line in text.splitlines()
                          if _F64.search(line)))
    return sorted(set(line.strip() for line in text.splitlines()
                      if any(_many(d) for d in _F64_SHAPE.findall(line))))


def _variables(init):
    return [keras.Variable(p) for p in init]


@contextlib.contextmanager
def _jax_x64():
    """float64 enabled (off by default in JAX, where no f64 can appear at
    all): a float64 constant or cast in the step would then show."""
    import jax

    saved = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", saved)


@pytest.mark.skipif(BACKEND != "jax", reason="inspects jax.jit's HLO; "
                    "TF's is checked by the next test, torch compiles none")
@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_jax_compiled_step_has_no_f64(spec, config):
    """The optimised HLO XLA runs (constants folded), with x64 enabled."""
    import jax

    init, grads = harness.problem(config, steps=1)
    with _jax_x64():
        opt = spec.cls(**config.kwargs)
        variables = _variables(init)
        opt.build(variables)
        assert all(v.dtype == "float32" for v in variables)
        assert jax.numpy.asarray(1.0).dtype == "float64"
        text = jax.jit(opt.stateless_apply).lower(
            [v.value for v in opt.variables], [ops.convert_to_tensor(g)
                                               for g in grads[0]],
            [v.value for v in variables]).compile().as_text()
    found = _f64_lines(text, spec)
    assert not found, "\n".join(found[:10])


@pytest.mark.skipif(BACKEND != "tensorflow",
                    reason="inspects tf.function's XLA HLO; JAX's is checked "
                    "by the previous test, torch compiles none")
@pytest.mark.parametrize("spec,config", DEFAULTS)
def test_tf_compiled_step_has_no_f64(spec, config):
    import tensorflow as tf

    init, grads = harness.problem(config, steps=1)
    opt = spec.cls(**config.kwargs)
    variables = _variables(init)
    opt.build(variables)

    @tf.function(jit_compile=True)
    def step(gradients):
        opt.apply(gradients, variables)

    tensors = [tf.constant(g) for g in grads[0]]
    text = step.experimental_get_compiler_ir(tensors)(stage="hlo")
    found = _f64_lines(text, spec)
    assert not found, "\n".join(found[:10])
