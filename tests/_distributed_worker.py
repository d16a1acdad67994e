"""Multi-device training vs one device (used by tests/test_distributed.py).

Virtual devices must be configured before JAX / TensorFlow initialise, so
the test runs this file in a subprocess, once per backend:

* JAX (``XLA_FLAGS=--xla_force_host_platform_device_count=4``):
  ``keras.distribution.DataParallel`` on 4 devices and ``ModelParallel`` on a
  (2, 2) ("batch", "model") mesh whose LayoutMap shards the Dense kernels.
* TensorFlow: ``tf.distribute.MirroredStrategy`` on 2 logical CPUs.

For every optimizer spec (default config plus one with weight decay and
momentum/amsgrad where the optimizer has them) a small model is trained with
``fit`` on fixed data, distributed and on a single device, in this process.
Prints one line ``RESULT <json>``: per case the max |Δw| between the two
runs, the largest movement of the weights, and (JAX) the slot variables
whose sharding differs from their parameter's.
"""

import inspect
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402,F401  (torch before TF, as in conftest.py)

import numpy as np  # noqa: E402

if __name__ == "__main__" and os.environ["KERAS_BACKEND"] == "tensorflow":
    # Before Keras imports TF's ops: logical devices cannot be configured
    # once TF has initialised.
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402

import specs  # noqa: E402

N_SAMPLES = 32
BATCH = 8           # divisible by 4 (JAX) and 2 (TF)
EPOCHS = 2          # 8 steps


def configs(spec):
    """(id, kwargs): the default config with weight decay plus momentum (or
    amsgrad) where the constructor takes them, else the default config.
    One config per optimizer: what distribution changes is how the state
    is created, laid out and reduced, which the config with the most state
    covers; a second, plainer config per optimizer doubled this file's
    runtime (the largest single item of CI on TF) and checked nothing
    more."""
    default = spec.configs[0]
    params = inspect.signature(spec.cls.__init__).parameters
    extra = dict(default.kwargs)
    if "weight_decay" in spec.capabilities:
        extra["weight_decay"] = 0.1
    if "amsgrad" in params:
        extra["amsgrad"] = True
    elif "momentum" in params:
        extra["momentum"] = 0.9
    if extra == default.kwargs:  # nothing to add (LazyAdam)
        return [(default.id, dict(default.kwargs))]
    return [("wd_momentum", extra)]


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_SAMPLES, 8)).astype("float32")
    y = rng.normal(size=(N_SAMPLES, 4)).astype("float32")
    return x, y


def build(spec, kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(4),
    ])
    optimizer = spec.cls(**kwargs)
    model.compile(optimizer=optimizer, loss="mse")
    return model


def train(spec, kwargs):
    model = build(spec, kwargs)
    x, y = data()
    initial = [keras.ops.convert_to_numpy(w) for w in model.weights]
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
              verbose=0)
    return model, initial, [keras.ops.convert_to_numpy(w)
                            for w in model.weights]


def compare(single, initial, weights):
    dev = max(float(np.max(np.abs(a.astype(np.float64) - b)))
              for a, b in zip(weights, single))
    moved = max(float(np.max(np.abs(s.astype(np.float64) - i)))
                for s, i in zip(single, initial))
    return {"max_abs_dev": dev, "moved": moved}


def _spec_of(variable):
    return tuple(variable.value.sharding.spec)


def sharding_report(model):
    """Slots whose sharding differs from their parameter's (JAX)."""
    opt = model.optimizer
    params = list(opt._trainable_variables)
    scalar = {s.name for s in opt._slot_specs() if s.scalar}
    mismatches, checked = [], 0
    for name, slots in opt._slots.items():
        for index, slot in enumerate(slots):
            if slot is None:
                continue
            if name in scalar or tuple(slot.shape) != tuple(
                    params[index].shape):
                # a 0-d value per parameter (NAdam's mu_product), or a slot
                # with a shape of its own (Adafactor's row and column
                # statistics, made with add_variable): replicated (small
                # by construction; sharding them like their parameter's
                # matching axis would save memory, not change results).
                want = ()
            else:
                want = _spec_of(params[index])
            got = _spec_of(slot)
            checked += 1
            if any(g is not None for g in got) or any(
                    w is not None for w in want):
                if got != want:
                    mismatches.append(f"{slot.path}: {got} != {want} "
                                      f"({params[index].path})")
    slot_ids = {id(s) for slots in opt._slots.values() for s in slots}
    for v in opt.variables:
        # the optimizer's own scalar variables (iteration, learning rate,
        # learning_rate_scale, plateau_state) are replicated
        if id(v) not in slot_ids and any(a is not None for a in _spec_of(v)):
            mismatches.append(f"{v.path}: {_spec_of(v)} is not replicated")
    sharded = [p.path for p in params if any(a is not None
                                             for a in _spec_of(p))]
    return {"mismatches": mismatches, "slots_checked": checked,
            "sharded_params": sharded}


def run_jax():
    import jax

    devices = jax.devices()
    assert len(devices) == 4, devices
    dist = keras.distribution
    data_parallel = dist.DataParallel(devices=devices)
    mesh = dist.DeviceMesh((2, 2), ("batch", "model"), devices)
    layout_map = dist.LayoutMap(mesh)
    # LayoutMap keys are full-matched against the variable path
    # ("sequential/dense/kernel"): shard the kernels' output dimension.
    layout_map[".*dense.*kernel"] = (None, "model")
    model_parallel = dist.ModelParallel(layout_map=layout_map,
                                        batch_dim_name="batch")
    out = {}
    for spec in distributed_specs():
        for config_id, kwargs in configs(spec):
            dist.set_distribution(None)
            _, initial, single = train(spec, kwargs)
            for mode, distribution in [("DataParallel", data_parallel),
                                       ("ModelParallel", model_parallel)]:
                dist.set_distribution(distribution)
                try:
                    model, _, weights = train(spec, kwargs)
                    case = compare(single, initial, weights)
                    case.update(sharding_report(model))
                except Exception as e:  # reported, asserted by the test
                    case = {"error": f"{type(e).__name__}: {e}"[:2000]}
                finally:
                    dist.set_distribution(None)
                out[f"{mode}/{spec.name}-{config_id}"] = case
    return out


def run_tensorflow():
    import tensorflow as tf

    logical = tf.config.list_logical_devices("CPU")
    assert len(logical) == 2, logical
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in logical])
    out = {}
    for spec in distributed_specs():
        for config_id, kwargs in configs(spec):
            _, initial, single = train(spec, kwargs)
            try:
                with strategy.scope():
                    model, _, weights = train(spec, kwargs)
                case = compare(single, initial, weights)
                case["replicas"] = strategy.num_replicas_in_sync
                opt = model.optimizer
                case["iterations"] = int(opt.iterations.numpy())
                # every optimizer variable (slots, scalars) is a mirrored
                # (distributed) variable, one component per replica
                case["not_distributed"] = [
                    v.path for v in opt.variables
                    if not isinstance(v.value,
                                      tf.distribute.DistributedValues)]
            except Exception as e:  # reported, asserted by the test
                case = {"error": f"{type(e).__name__}: {e}"[:2000]}
            out[f"MirroredStrategy/{spec.name}-{config_id}"] = case
    return out


#: One optimizer per mechanism that distribution can break, not all ~35:
#: what a data-parallel or sharded run changes is how optimizer *variables*
#: are created, laid out and reduced, and the elementwise algorithms share
#: one way of doing that (slots from add_variable_from_reference). Covered:
#: plain slots (sgd, adam), per-variable scalar slots (nadam, asgd,
#: novograd), slots with their own shapes (adafactor's row/column
#: statistics), a second update rule with matrix math (muon), cross-variable
#: statistics computed after the all-reduce (lamb), per-tensor norms and
#: projections (adamp), row masks (lazyadam) and the historically worst
#: rounding case (rmsprop with momentum and weight decay), one step
#: size for all variables from sums over every variable and slot, kept in
#: optimizer-wide variables written once per step (prodigy; dadaptsgd,
#: whose first step also takes the norm of all gradients), and modes with
#: float64 bookkeeping in per-variable scalar slots, written inside the
#: step (schedulefree_adamw). A new optimizer with a new mechanism belongs
#: in this list.
DISTRIBUTED = ("sgd", "adam", "rmsprop", "nadam", "asgd", "novograd",
               "adafactor", "muon", "lamb", "adamp", "lazyadam", "prodigy",
               "dadaptsgd", "schedulefree_adamw")


def distributed_specs():
    return [specs.SPECS_BY_NAME[name] for name in DISTRIBUTED]


MODES = {"jax": ["DataParallel", "ModelParallel"],
         "tensorflow": ["MirroredStrategy"]}


def cases(backend):
    """The case names the worker reports on ``backend``."""
    return [f"{mode}/{spec.name}-{config_id}"
            for spec in distributed_specs()
            for config_id, _ in configs(spec)
            for mode in MODES[backend]]


if __name__ == "__main__":
    result = run_jax() if os.environ["KERAS_BACKEND"] == "jax" else run_tensorflow()
    print("RESULT " + json.dumps(result), flush=True)
