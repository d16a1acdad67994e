"""Optimizer-state memory on a transformer block: Adam, AdamW8bit, sharded.

    python -m benchmarks.sharded_memory --out benchmarks/results/sharded_memory.json

JAX backend, 4 virtual CPU devices, ``keras.distribution.DataParallel``: a
transformer block (multi-head self-attention with 12 heads of 64, d_model
768, a 3072-wide GELU MLP, two LayerNorms; 7.1M parameters) trained for 3
steps with ``fit`` (batch 8 x 32 tokens) under each optimizer:

* ``optimizer_state_bytes_per_device``: the bytes of all the optimizer's
  variables held by one device, read from the arrays' shardings
  (``sharding.shard_shape``; device 0), and the same summed over the 4
  devices (``..._all_devices``): replicated state is held 4 times;
* ``peak_rss_bytes``: the process's peak resident memory
  (``resource.getrusage``) after the steps. The 4 virtual devices share one
  process, so this counts every device's copy; SGD without momentum (no
  state) is the baseline the other rows are compared with.

Each optimizer runs in a fresh subprocess (peak RSS only grows within a
process). Takes about a minute on 2 CPUs.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

from benchmarks import write_json

DEVICES = 4
D_MODEL = 768
HEADS = 12
MLP = 3072
SEQ = 32
BATCH = 8
STEPS = 3

#: label -> (registry name, keyword arguments)
CONFIGS = {
    "SGD (no state)": ("sgd", {}),
    "Adam": ("adam", {}),
    "AdamW8bit": ("adamw8bit", {}),
    "Adam, shard_state=True": ("adam", {"shard_state": True}),
    "AdamW8bit, shard_state=True": ("adamw8bit", {"shard_state": True}),
}


def _model():
    import keras

    inputs = keras.Input((SEQ, D_MODEL))
    x = keras.layers.MultiHeadAttention(HEADS, D_MODEL // HEADS)(inputs,
                                                                 inputs)
    x = keras.layers.LayerNormalization()(inputs + x)
    y = keras.layers.Dense(MLP, activation="gelu")(x)
    y = keras.layers.Dense(D_MODEL)(y)
    outputs = keras.layers.LayerNormalization()(x + y)
    return keras.Model(inputs, outputs)


def measure(label):
    """One optimizer, in this (fresh) process."""
    import resource

    import jax
    import keras
    import numpy as np

    import keras_optzoo as oz
    from keras_optzoo.optimizers import _sharding

    assert len(jax.devices()) == DEVICES, jax.devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    keras.utils.set_random_seed(0)
    name, kwargs = CONFIGS[label]
    model = _model()
    model.compile(optimizer=oz.get(name, learning_rate=1e-3, **kwargs),
                  loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH * STEPS, SEQ, D_MODEL)).astype("float32")
    y = rng.standard_normal((BATCH * STEPS, SEQ, D_MODEL)).astype("float32")
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    optimizer = model.optimizer
    local, full = _sharding.per_device_bytes(optimizer.variables)
    all_devices = 0
    for variable in optimizer.variables:
        value = variable.value
        all_devices += sum(s.data.nbytes for s in value.addressable_shards)
    weights_local, _ = _sharding.per_device_bytes(model.trainable_variables)
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return {
        "optimizer": label,
        "n_params": n_params,
        "weight_bytes_per_device": weights_local,
        "optimizer_state_bytes": full,
        "optimizer_state_bytes_per_device": local,
        "optimizer_state_bytes_all_devices": all_devices,
        "state_bytes_per_param_per_device": local / n_params,
        "peak_rss_bytes": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def run():
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") +
                          f" --xla_force_host_platform_device_count="
                          f"{DEVICES}"),
               TF_CPP_MIN_LOG_LEVEL="2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    records = []
    for label in CONFIGS:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.sharded_memory", "--one",
             label], env=env, cwd=root, capture_output=True, text=True,
            timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"{label}: {proc.stderr[-3000:]}")
        line = [x for x in proc.stdout.splitlines()
                if x.startswith("RECORD ")][-1]
        record = json.loads(line[len("RECORD "):])
        records.append(record)
        print(f"  {label}: state {record['optimizer_state_bytes_per_device']:,}"
              f" bytes/device (all devices "
              f"{record['optimizer_state_bytes_all_devices']:,}), peak RSS "
              f"{record['peak_rss_bytes'] / 2**20:.0f} MiB", flush=True)
    base = records[0]["peak_rss_bytes"]
    for record in records:
        record["peak_rss_over_sgd_bytes"] = record["peak_rss_bytes"] - base
    return {"backend": "jax", "devices": DEVICES,
            "distribution": "DataParallel",
            "model": {"d_model": D_MODEL, "heads": HEADS, "mlp": MLP,
                      "seq": SEQ, "batch": BATCH, "steps": STEPS},
            "machine": {"cpus": os.cpu_count(),
                        "platform": platform.platform(),
                        "load": os.getloadavg()},
            "records": records}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print("RECORD " + json.dumps(measure(args.one)), flush=True)
        return
    result = run()
    write_json(result, args.out)


if __name__ == "__main__":
    main()
