"""Real multi-device training == single-device training, every optimizer.

JAX: ``keras.distribution.DataParallel`` on 4 virtual CPU devices and
``ModelParallel`` on a (2, 2) ("batch", "model") mesh with the Dense kernels
sharded on "model"; each optimizer slot must have its parameter's sharding.
TensorFlow: ``tf.distribute.MirroredStrategy`` on 2 logical CPUs.

Virtual devices must be set up before the backend initialises, so one
subprocess per backend (tests/_distributed_worker.py) trains every case and
reports JSON; the tests below assert on it. The oracle is the same ``fit``
on a single device in that subprocess.

Tolerance: the distributed runs sum the gradient over replicas in a
different order, so they agree to float32 rounding, not bit-exactly.
Observed (8 steps, weights moving by 0.03..1.3): max |Δw| 5.7e-7 on JAX
(ModelParallel RMSprop with momentum and weight decay), 3.0e-7 on TF
(MirroredStrategy, same config); typical 3e-8..6e-8. Asserted: 1e-6.

Torch backend: no cases. Keras 3.15's torch backend has no
``keras.distribution`` implementation (``keras/src/backend`` ships a
``distribution_lib`` for jax and tensorflow only) and no ``tf.distribute``
equivalent; torch's own DDP/FSDP run outside Keras's training loop, so
there is no Keras multi-device path to test on it.
"""

import os

import pytest

import keras

import harness

import _distributed_worker as worker

ATOL = 1e-6
BACKEND = keras.backend.backend()
WORKER_TIMEOUT = 600

# On the torch backend the list is empty and no test is defined below (see
# the module docstring): nothing is collected, nothing skipped.
CASES = worker.cases(BACKEND) if BACKEND in worker.MODES else []


if CASES:
    @pytest.fixture(scope="module")
    def results():
        env = dict(os.environ, KERAS_BACKEND=BACKEND)
        if BACKEND == "jax":
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                                " --xla_force_host_platform_device_count=4")
        return harness.run_worker([worker.__file__], env, WORKER_TIMEOUT)


    @pytest.mark.slow
    def test_worker_reports_every_case(results):
        assert sorted(results) == sorted(CASES)


    @pytest.mark.slow
    @pytest.mark.parametrize("case", CASES)
    def test_distributed_equals_single_device(results, case):
        result = results[case]
        assert "error" not in result, result.get("error")
        assert result["moved"] > 1e-3, "training did not move the weights"
        assert result["max_abs_dev"] <= ATOL, (
            f"{case}: max |w_distributed - w_single| = "
            f"{result['max_abs_dev']:.3e} > {ATOL:g} "
            f"(weights moved by up to {result['moved']:.3e})")
        if BACKEND == "tensorflow":
            assert result["replicas"] == 2
            # one update per step, not one per replica
            assert result["iterations"] == (
                worker.N_SAMPLES // worker.BATCH * worker.EPOCHS)
            assert result["not_distributed"] == []


if BACKEND == "jax":
    @pytest.mark.slow
    @pytest.mark.parametrize("case", CASES)
    def test_slots_have_their_parameters_sharding(results, case):
        """JAX: a slot's sharding spec equals its parameter's (matched through
        the optimizer's ``_slots[name][index]``); scalar slots (NAdam's
        mu_product) and the optimizer's own scalar variables are replicated."""
        result = results[case]
        assert "error" not in result, result.get("error")
        assert result["mismatches"] == []
        if case.startswith("ModelParallel/"):
            # the check is not vacuous: both kernels are sharded
            assert len(result["sharded_params"]) == 2, result["sharded_params"]
