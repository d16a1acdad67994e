"""Sharded optimizer state vs replicated (used by tests/test_shard_state.py).

JAX only, on 4 virtual CPU devices (``XLA_FLAGS`` set by the test before
JAX starts in this subprocess). For one optimizer per state mechanism
(:data:`CASES`) a small model is trained with ``fit`` under
``keras.distribution.DataParallel``, once with ``shard_state=False`` and
once with ``shard_state=True``; the sharded run is saved to a ``.keras``
file halfway and continued, and the file is loaded and continued the same
number of steps. One ``ModelParallel`` case checks that a slot of a sharded
kernel is split on the batch axis as well. Prints ``RESULT <json>``.
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import numpy as np  # noqa: E402

import keras  # noqa: E402

import keras_optzoo as oz  # noqa: E402
from keras_optzoo.optimizers import _sharding  # noqa: E402

N_SAMPLES = 32
BATCH = 8            # divisible by the 4 devices
EPOCHS = 2           # before the save, and again after it (8 steps each)
DEVICES = 4

#: One optimizer per way the base class creates state: plain slots shaped
#: like the variable, a per-variable scalar slot (with Keras's gradient
#: accumulators), factored slots of their own shapes, a second (matrix) rule whose update multiplies the sharded
#: momentum, statistics summed over all variables, and 8-bit codes with
#: per-block absmax (min_8bit_size=0: every variable quantised).
CASES = {
    "plain": ("adam", {"learning_rate": 0.01, "weight_decay": 0.1,
                       "amsgrad": True}),
    "scalar": ("nadam", {"learning_rate": 0.01,
                         "gradient_accumulation_steps": 2}),
    "factored": ("adafactor", {"learning_rate": 0.01}),
    "matrix-routed": ("muon", {"learning_rate": 0.02}),
    "cross-variable statistics": ("lamb", {"learning_rate": 0.01}),
    "8-bit": ("adamw8bit", {"learning_rate": 0.01, "min_8bit_size": 0}),
}


#: The cases also saved halfway, loaded and continued (each load compiles
#: the train step again, so not all of them): slots copied from the
#: variable's layout, a replicated scalar slot, slots of their own shapes,
#: uint8 codes. Muon's and LAMB's slots are made as Adam's; what they add
#: is update math, which the trajectory comparison covers.
RESUME = ("plain", "scalar", "factored", "8-bit")


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_SAMPLES, 8)).astype("float32")
    y = rng.normal(size=(N_SAMPLES, 4)).astype("float32")
    return x, y


def build(name, kwargs, shard):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="tanh"),
        keras.layers.Dense(4),
    ])
    model.compile(optimizer=oz.get(name, shard_state=shard, **kwargs),
                  loss="mse")
    return model


def fit(model):
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
              verbose=0)


def numpy_weights(model):
    return [np.asarray(keras.ops.convert_to_numpy(w), np.float64)
            for w in model.weights]


def slot_report(optimizer):
    """Per slot: its bytes on device 0 and in full; the slots that are not
    split 1/DEVICES although an axis divides (or are split although none
    does)."""
    wrong, local, full = [], 0, 0
    keras_state = [getattr(optimizer, "_model_variables_moving_average",
                           None) or [],
                   getattr(optimizer, "_accumulated_gradients", None) or []]
    for slots in list(optimizer._slots.values()) + keras_state:
        for slot in slots:
            if slot is None:
                continue
            mine, whole = _sharding.per_device_bytes([slot])
            local, full = local + mine, full + whole
            divisible = any(d % DEVICES == 0 and d > 0 for d in slot.shape)
            want = whole // DEVICES if divisible else whole
            if mine != want:
                wrong.append(f"{slot.path}{tuple(slot.shape)}: {mine} "
                             f"bytes on a device, expected {want} "
                             f"({slot.value.sharding.spec})")
    every_local, every_full = _sharding.per_device_bytes(optimizer.variables)
    return {"slot_bytes_per_device": local, "slot_bytes": full,
            "state_bytes_per_device": every_local,
            "state_bytes": every_full, "wrong": wrong}


def run_case(name, kwargs, tmp, resume):
    initial = numpy_weights(build(name, kwargs, False))
    plain = build(name, kwargs, False)
    fit(plain)
    fit(plain)
    reference = numpy_weights(plain)
    sharded = build(name, kwargs, True)
    fit(sharded)
    path = os.path.join(tmp, f"{name}.keras")
    sharded.save(path)
    fit(sharded)
    weights = numpy_weights(sharded)
    moved = max(float(np.max(np.abs(r - i)))
                for r, i in zip(reference, initial))
    dev = max(float(np.max(np.abs(w - r)))
              for w, r in zip(weights, reference))
    out = {"moved": moved, "max_abs_dev": dev, "relative_dev": dev / moved}
    out.update(slot_report(sharded.optimizer))
    unsharded = slot_report(plain.optimizer)
    out["replicated_slot_bytes_per_device"] = \
        unsharded["slot_bytes_per_device"]
    if not resume:
        return out
    loaded = keras.saving.load_model(path)
    out["loaded_shard_state"] = loaded.optimizer.shard_state
    fit(loaded)
    out["resume_weights_max_abs_dev"] = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(numpy_weights(loaded), weights))
    out["resume_state_max_abs_dev"] = max(
        float(np.max(np.abs(
            np.asarray(keras.ops.convert_to_numpy(a), np.float64)
            - np.asarray(keras.ops.convert_to_numpy(b), np.float64))))
        for a, b in zip(loaded.optimizer.variables,
                        sharded.optimizer.variables))
    out["loaded_wrong"] = slot_report(loaded.optimizer)["wrong"]
    return out


def run_model_parallel():
    """Adam on a (2, 2) ("batch", "model") mesh, kernels split on "model":
    their slots are split on "batch" too; same weights as replicated."""
    dist = keras.distribution
    mesh = dist.DeviceMesh((2, 2), ("batch", "model"), dist.list_devices())
    layout_map = dist.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = (None, "model")
    dist.set_distribution(dist.ModelParallel(layout_map=layout_map,
                                             batch_dim_name="batch"))
    name, kwargs = CASES["plain"]
    initial = numpy_weights(build(name, kwargs, False))
    plain = build(name, kwargs, False)
    fit(plain)
    sharded = build(name, kwargs, True)
    fit(sharded)
    reference, weights = numpy_weights(plain), numpy_weights(sharded)
    moved = max(float(np.max(np.abs(r - i)))
                for r, i in zip(reference, initial))
    dev = max(float(np.max(np.abs(w - r)))
              for w, r in zip(weights, reference))
    specs = {}
    for slots in sharded.optimizer._slots.values():
        for slot in slots:
            specs[slot.path] = [list(a) if isinstance(a, tuple) else a
                                for a in slot.value.sharding.spec]
    kernels = {v.path: [a for a in v.value.sharding.spec]
               for v in sharded.trainable_variables}
    return {"moved": moved, "max_abs_dev": dev, "relative_dev": dev / moved,
            "slot_specs": specs, "weight_specs": kernels}


def keras_state():
    """Keras's own per-variable state (EMA copies of the weights, gradient
    accumulators) is split too. Built, not trained: Keras 3.15 on JAX
    fails a second ``fit`` after an EMA run ("Attempt to donate the same
    buffer twice", then a segfault), sharded or not, because the EMA
    overwrite at the end of ``fit`` leaves a weight and its average sharing
    one buffer."""
    model = build("adam", {"use_ema": True,
                           "gradient_accumulation_steps": 2}, True)
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    out = slot_report(optimizer)
    out["ema"] = len(optimizer._model_variables_moving_average)
    out["accumulators"] = len(optimizer._accumulated_gradients)
    return out


def main():
    import jax

    assert len(jax.devices()) == DEVICES, jax.devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mechanism, (name, kwargs) in CASES.items():
            try:
                start = time.perf_counter()
                out[mechanism] = run_case(name, kwargs, tmp,
                                           mechanism in RESUME)
                out[mechanism]["seconds"] = time.perf_counter() - start
            except Exception as e:  # reported, asserted by the test
                out[mechanism] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    try:
        out["keras_state"] = keras_state()
    except Exception as e:
        out["keras_state"] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    try:
        out["ModelParallel"] = run_model_parallel()
    except Exception as e:
        out["ModelParallel"] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    keras.distribution.set_distribution(None)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
