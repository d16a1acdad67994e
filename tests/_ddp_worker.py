"""Worker of tests/test_ddp.py: param groups under data parallelism.

    python _ddp_worker.py torch RANK WORLD PORT OUT   # one DDP rank (gloo)
    python _ddp_worker.py torch single 1 0 OUT        # the combined batch
    python _ddp_worker.py jax|tensorflow              # prints RESULT {json}

torch: a Keras model (a ``torch.nn.Module`` on the torch backend) wrapped in
``torch.nn.parallel.DistributedDataParallel``; each rank runs the forward
and backward on its half of the batch (DDP averages the gradients across
ranks in ``backward``), then ``optimizer.apply`` with the parameters'
``.grad``. JAX: ``keras.distribution.DataParallel`` on 2 virtual CPUs;
TensorFlow: ``tf.distribute.MirroredStrategy`` on 2 logical CPUs; both with
``fit`` and compared with the same ``fit`` on one device.
"""

import json
import os
import sys

STEPS = 6
BATCH = 32


def data():
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data[:STEPS * BATCH] / 16.0).astype("float32")
    y = d.target[:STEPS * BATCH].astype("int32")
    return np.asarray(x), np.asarray(y)


def build(keras, oz):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(16, activation="relu", name="body"),
        keras.layers.LayerNormalization(name="norm"),
        keras.layers.Dense(10, name="head"),
    ])
    sched = oz.schedules.CosineAnnealingLR(0.01, T_max=STEPS)
    opt = oz.AdamW(learning_rate=sched, weight_decay=0.05, param_groups=[
        *oz.param_groups.no_weight_decay(model),
        {"params": r"head/kernel", "learning_rate": 0.05, "beta_1": 0.8},
    ])
    return model, opt


def torch_main(rank, world, port, out):
    import numpy as np
    import torch

    import keras
    import keras_optzoo as oz

    x, y = data()
    model, opt = build(keras, oz)
    net = model
    if rank != "single":
        import torch.distributed as dist

        rank, world = int(rank), int(world)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        net = torch.nn.parallel.DistributedDataParallel(model)
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    params = [v.value for v in model.trainable_variables]
    for step in range(STEPS):
        xb = x[step * BATCH:(step + 1) * BATCH]
        yb = y[step * BATCH:(step + 1) * BATCH]
        if rank != "single":
            half = BATCH // world
            xb = xb[rank * half:(rank + 1) * half]
            yb = yb[rank * half:(rank + 1) * half]
        for p in params:
            p.grad = None
        loss = loss_fn(torch.as_tensor(yb), net(torch.as_tensor(xb)))
        loss.backward()
        with torch.no_grad():
            opt.apply([p.grad.clone() for p in params],
                      model.trainable_variables)
    weights = [np.asarray(w) for w in model.get_weights()]
    np.savez(out, *weights, group_of=np.asarray(opt._group_of),
             path=np.asarray(opt.update_path))
    if rank != "single":
        torch.distributed.destroy_process_group()


def keras_main(backend):
    import numpy as np

    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_optzoo as oz

    x, y = data()

    def train(strategy=None):
        if strategy is None:
            model, opt = build(keras, oz)
        else:
            with strategy.scope():
                model, opt = build(keras, oz)
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if strategy is None:
            model.compile(optimizer=opt, loss=loss,
                          jit_compile=backend == "jax")
        else:
            with strategy.scope():
                model.compile(optimizer=opt, loss=loss)
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        return model, opt

    single, _ = train()
    if backend == "jax":
        import jax

        devices = jax.devices()[:2]
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices))
        dist, opt = train()
        replicas = len(devices)
    else:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(
            [d.name for d in tf.config.list_logical_devices("CPU")])
        dist, opt = train(strategy)
        replicas = strategy.num_replicas_in_sync
    w0 = build(keras, oz)[0].get_weights()
    dev = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
              for a, b in zip(single.get_weights(), dist.get_weights()))
    moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(single.get_weights(), w0))
    print("RESULT " + json.dumps({
        "max_abs_dev": dev, "moved": moved, "replicas": replicas,
        "group_of": list(opt._group_of),
        "iterations": int(keras.ops.convert_to_numpy(opt.iterations))}))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    if sys.argv[1] == "torch":
        torch_main(*sys.argv[2:6])
    else:
        keras_main(sys.argv[1])
