"""Data parallelism with param groups, per backend (tests/_ddp_worker.py).

torch: two gloo CPU processes training a Keras model wrapped in
``torch.nn.parallel.DistributedDataParallel`` with a keras-optzoo optimizer
with param groups (no weight decay on biases and norms, a 5x head rate with
its own beta_1, a cosine schedule) end with the same weights as one process
on the combined batch. JAX: ``keras.distribution.DataParallel`` on 2
virtual CPUs; TensorFlow: ``tf.distribute.MirroredStrategy`` on 2 logical
CPUs; both against the same ``fit`` on one device.

Tolerance: the replicas sum the gradient in another order, so the runs agree
to float32 rounding, not bit-exactly (as tests/test_distributed.py).
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import keras

import harness

ATOL = 1e-6
BACKEND = keras.backend.backend()
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "_ddp_worker.py")
TIMEOUT = 300


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    if BACKEND == "jax":
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_force_host_platform_device_count=2")
    return env


@pytest.mark.skipif(BACKEND != "torch", reason="torch.distributed recipe; "
                    "the JAX and TF tests below cover the other backends")
def test_torch_ddp_equals_single_process(tmp_path):
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, WORKER, "torch", str(rank), "2", str(port),
         str(tmp_path / f"rank{rank}.npz")], env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(2)]
    single = subprocess.run(
        [sys.executable, WORKER, "torch", "single", "1", "0",
         str(tmp_path / "single.npz")], env=_env(), capture_output=True,
        text=True, timeout=TIMEOUT)
    assert single.returncode == 0, single.stderr[-4000:]
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err[-4000:]
    ref = np.load(tmp_path / "single.npz")
    names = [k for k in ref.files if k.startswith("arr_")]
    init = None
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        # three groups: default, no decay (biases, norm), head kernel
        assert sorted(set(got["group_of"].tolist())) == [0, 1, 2]
        dev = max(float(np.max(np.abs(got[k] - ref[k]))) for k in names)
        assert dev <= ATOL, f"rank {rank}: max |w_ddp - w_single| = {dev:.3e}"
        init = got
    assert init is not None


@pytest.mark.skipif(BACKEND not in ("jax", "tensorflow"),
                    reason="keras.distribution / tf.distribute: the torch "
                    "backend's recipe is DDP, tested above")
def test_param_groups_under_keras_data_parallel():
    result = harness.run_worker([WORKER, BACKEND], _env(), TIMEOUT)
    assert result["replicas"] == 2
    assert sorted(set(result["group_of"])) == [0, 1, 2]
    assert result["moved"] > 1e-3
    assert result["max_abs_dev"] <= ATOL, result
    assert result["iterations"] == 6  # one update per step, not per replica
