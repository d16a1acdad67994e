"""Compile once: the compiled optimizer step is traced a single time.

A learning-rate change (float lr assigned, a schedule advancing, the
plateau's learning_rate_scale lowered) must be a change of variable values,
never of the traced program. The count comes from a Python side effect that
runs only while JAX or TF traces the function.

The torch backend runs the optimizer eagerly (no trace to count), so this
module defines its cases for JAX and TensorFlow only.
"""

import numpy as np
import pytest

import keras
from keras import ops

import harness
import specs
import keras_optzoo as oz

STEPS = 6

BACKEND = harness.backend()
# One optimizer per base-class mechanism (specs.MECHANISMS): retracing comes
# from how the step reads its scalars (lr, step, schedule values, statistics),
# which is the base class's, not the algorithm's.
CASES = [pytest.param(spec, id=spec.name) for spec in specs.mechanism_specs()]


def _optimizers(spec):
    config = spec.configs[0].kwargs
    yield "float lr", spec.cls(**config)
    sched = oz.schedules.StepLR(0.05, step_size=2)
    yield "schedule lr", spec.cls(**{**config, "learning_rate": sched})


def _count_traces(optimizer, init, grads, lr_changes):
    """Runs STEPS compiled steps, changing the lr between them; returns the
    number of traces and the final parameters."""
    variables = [keras.Variable(p) for p in init]
    optimizer.build(variables)
    traces = []
    float_lr = isinstance(optimizer._learning_rate, keras.Variable)
    if BACKEND == "jax":
        import jax

        def step(opt_values, g, var_values):
            traces.append(1)
            return optimizer.stateless_apply(opt_values, g, var_values)

        jitted = jax.jit(step)
        opt_values = [v.value for v in optimizer.variables]
        var_values = [v.value for v in variables]
        lr_index = [id(v) for v in optimizer.variables].index(
            id(optimizer._learning_rate)) if float_lr else None
        scale_index = [id(v) for v in optimizer.variables].index(
            id(optimizer.learning_rate_scale))
        for t in range(STEPS):
            if t in lr_changes:
                if float_lr:
                    opt_values[lr_index] = ops.convert_to_tensor(
                        np.float32(lr_changes[t]))
                opt_values[scale_index] = ops.convert_to_tensor(
                    np.float32(0.5))
            var_values, opt_values = jitted(
                opt_values, [ops.convert_to_tensor(x) for x in grads[t]],
                var_values)
        return len(traces), [np.asarray(v) for v in var_values]

    import tensorflow as tf

    @tf.function(jit_compile=True)
    def step(g):
        traces.append(1)
        optimizer.apply(g, variables)

    for t in range(STEPS):
        if t in lr_changes:
            if float_lr:
                optimizer.learning_rate = lr_changes[t]
            optimizer.learning_rate_scale.assign(0.5)
        step([ops.convert_to_tensor(x) for x in grads[t]])
    return len(traces), [ops.convert_to_numpy(v) for v in variables]


def _check_one_trace(spec):
    init, grads = harness.problem(spec.configs[0], steps=STEPS)
    for label, optimizer in _optimizers(spec):
        count, params = _count_traces(optimizer, init, grads, {2: 0.01,
                                                               4: 0.002})
        assert count == 1, f"{label}: traced {count} times"
        assert all(np.all(np.isfinite(p)) for p in params)
        moved = max(np.max(np.abs(p - i)) for p, i in zip(params, init))
        assert moved > 0, label


if BACKEND != "torch":  # torch runs eagerly: no trace to count (see above)

    @pytest.mark.parametrize("spec", CASES)
    def test_one_trace_across_steps_and_lr_changes(spec):
        _check_one_trace(spec)
