"""The step size d that Prodigy and D-Adaptation estimate over a digits run,
keras-optzoo next to its reference.

    KERAS_BACKEND=jax python -m benchmarks.dadapt_d \\
        --out benchmarks/results/dadapt_d_jax.json \\
        --png benchmarks/results/dadapt_d.png

A Keras MLP (64-32-10, ReLU) on scikit-learn's 8x8 digits (all 1797
images, shipped with scikit-learn: nothing is downloaded), trained with
``fit`` (batch 64, no shuffling, ``--epochs`` epochs) by keras-optzoo's
Prodigy, DAdaptAdam and DAdaptSGD with their default arguments (learning
rate 1, d0 = 1e-6); ``d`` is read after every step from a callback
(``optimizer.d``). The same model in torch (the Dense kernels transposed,
the same initial weights and batches) is trained by the reference
(prodigyopt 1.1.2, dadaptation 3.2), in float32 and again in float64: the
float64 curve shows how far float32 rounding alone moves the reference's
own estimate. The JSON holds every curve, the losses and the final
accuracies; the PNG draws d against the step, one panel per optimizer.
"""

import argparse
import json
import os
import platform

import numpy as np

NAMES = (("prodigy", "Prodigy"), ("dadaptadam", "DAdaptAdam"),
         ("dadaptsgd", "DAdaptSGD"))
BATCH = 64
HIDDEN = 32


def _data():
    from sklearn.datasets import load_digits

    data = load_digits()
    return ((data.data / 16.0).astype("float32"),
            data.target.astype("int64"))


def _reference(name, params):
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params)
    import dadaptation

    return getattr(dadaptation, dict(NAMES)[name])(params)


def _ours(name, x, y, epochs):
    import keras

    import keras_optzoo as oz

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(HIDDEN, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=getattr(oz, dict(NAMES)[name])(),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  metrics=["accuracy"])
    init = [np.asarray(w) for w in model.get_weights()]

    class Record(keras.callbacks.Callback):
        d, loss = [], []

        def on_train_batch_end(self, batch, logs=None):
            Record.d.append(self.model.optimizer.d)
            Record.loss.append(float(logs["loss"]))

    Record.d, Record.loss = [], []
    history = model.fit(x, y.astype("int32"), batch_size=BATCH,
                        epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[Record()])
    _, accuracy = model.evaluate(x, y.astype("int32"), verbose=0)
    return init, {"d": Record.d, "epoch_loss": history.history["loss"],
                  "accuracy": float(accuracy)}


def _theirs(name, init, x, y, epochs, dtype):
    import torch

    layers = [torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(),
              torch.nn.Linear(HIDDEN, 10)]
    model = torch.nn.Sequential(*layers).to(dtype)
    with torch.no_grad():
        for layer, kernel, bias in zip(layers[::2], init[::2], init[1::2]):
            layer.weight.copy_(torch.tensor(kernel.T, dtype=dtype))
            layer.bias.copy_(torch.tensor(bias, dtype=dtype))
    opt = _reference(name, model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.tensor(x, dtype=dtype), torch.tensor(y)
    ds, epoch_loss = [], []
    for _ in range(epochs):
        losses = []
        for start in range(0, len(x), BATCH):
            opt.zero_grad()
            loss = loss_fn(model(xs[start:start + BATCH]),
                           ys[start:start + BATCH])
            loss.backward()
            opt.step()
            ds.append(float(opt.param_groups[0]["d"]))
            losses.append(float(loss.detach()))
        epoch_loss.append(float(np.mean(losses)))
    with torch.no_grad():
        accuracy = float((model(xs).argmax(1) == ys).float().mean())
    return {"d": ds, "epoch_loss": epoch_loss, "accuracy": accuracy}


def run(epochs):
    import keras
    import torch

    x, y = _data()
    out = {"backend": keras.backend.backend(), "epochs": epochs,
           "batch": BATCH, "samples": len(x),
           "versions": {"keras": keras.__version__,
                        "torch": torch.__version__},
           "machine": platform.platform(), "curves": {}}
    for name, _ in NAMES:
        init, ours = _ours(name, x, y, epochs)
        curves = {"keras-optzoo": ours}
        for label, dtype in (("reference float32", torch.float32),
                             ("reference float64", torch.float64)):
            curves[label] = _theirs(name, init, x, y, epochs, dtype)
        ref = np.array(curves["reference float32"]["d"])
        mine = np.array(ours["d"])
        curves["max_rel_dev_d_vs_reference_float32"] = float(
            np.max(np.abs(mine - ref)) / np.max(np.abs(ref)))
        out["curves"][name] = curves
        print(f"{name:11s} d: ours {mine[-1]:.4g}, reference "
              f"{ref[-1]:.4g} (float64 "
              f"{curves['reference float64']['d'][-1]:.4g}); max |Δd| / "
              f"max d = {curves['max_rel_dev_d_vs_reference_float32']:.1e}; "
              f"accuracy {ours['accuracy']:.3f} vs "
              f"{curves['reference float32']['accuracy']:.3f}", flush=True)
    return out


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(NAMES), figsize=(13, 6.4),
                             gridspec_kw={"height_ratios": [3, 2]})
    styles = {"keras-optzoo": dict(lw=2.4, color="tab:blue"),
              "reference float32": dict(lw=1.2, color="black", ls="--"),
              "reference float64": dict(lw=1.0, color="tab:orange", ls=":")}
    for column, (name, title) in enumerate(NAMES):
        curves = result["curves"][name]
        top, bottom = axes[0, column], axes[1, column]
        for label, style in styles.items():
            text = label if label != "keras-optzoo" else \
                f"keras-optzoo ({result['backend']})"
            d = curves[label]["d"]
            top.plot(np.arange(1, len(d) + 1), d, label=text, **style)
            loss = curves[label]["epoch_loss"]
            bottom.plot(np.arange(1, len(loss) + 1), loss, **style)
        top.set_yscale("log")
        top.set_title(f"{title}: accuracy "
                      f"{curves['keras-optzoo']['accuracy']:.3f} "
                      f"(reference "
                      f"{curves['reference float32']['accuracy']:.3f})",
                      fontsize=10)
        top.set_xlabel("step")
        bottom.set_xlabel("epoch")
        bottom.set_yscale("log")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("estimated step size d")
    axes[1, 0].set_ylabel("training loss (epoch mean)")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"d over {result['epochs']} epochs of digits "
                 f"(batch {result['batch']}, defaults: lr 1, d0 1e-6)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default=None)
    parser.add_argument("--png", default=None)
    args = parser.parse_args(argv)
    result = run(args.epochs)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    if args.png:
        plot(result, args.png)


if __name__ == "__main__":
    main()
