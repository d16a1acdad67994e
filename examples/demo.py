"""The keras-optzoo demo: the first-wave optimizers (torch.optim's SGD in
its gd / momentum / nag presets, Adagrad, RMSprop, Adadelta, Adam, AdamW,
NAdam) and three optimizer+schedule recipes, training one small Keras model
on scikit-learn's digits.

    python examples/demo.py                 # full run (about 2-4 min on 2 CPU cores)
    python examples/demo.py --quick         # a few seconds, what CI runs
    python examples/demo.py --out DIR       # where the pictures and table go

Writes into the output folder (default ./demo-output):
    learning_curves.png   validation accuracy per epoch, one line per run
    results.md            final accuracy, loss and wall time per run
    tutorial_surface.png  the optimizers' paths on the tutorial's 2-D surface
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_optzoo as oz  # noqa: E402


def load_digits(seed=0):
    """scikit-learn's 8x8 digits (shipped with the package: no download)."""
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:])


def build_model(optimizer, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def recipes(epochs, steps_per_epoch):
    """name -> (optimizer factory, extra callbacks)."""
    plain = {
        "gd": dict(learning_rate=0.1),
        "momentum": dict(learning_rate=0.05),
        "nag": dict(learning_rate=0.05),
        "adagrad": dict(learning_rate=0.05),
        "rmsprop": dict(learning_rate=1e-3),
        "adadelta": dict(learning_rate=1.0),
        "adam": dict(learning_rate=1e-3),
        "adamw": dict(learning_rate=1e-3),
        "nadam": dict(learning_rate=2e-3),
    }
    out = {name: (lambda n=name, kw=kw: oz.get(n, **kw), [])
           for name, kw in plain.items()}
    out["sgd+StepLR"] = (
        lambda: oz.SGD(
            learning_rate=oz.schedules.StepLR(
                0.1, step_size=max(1, epochs // 3), gamma=0.3,
                steps_per_epoch=steps_per_epoch),
            momentum=0.9),
        [])
    one_cycle = oz.schedules.OneCycleLR(
        max_lr=1e-2, total_steps=epochs * steps_per_epoch)
    out["adamw+OneCycleLR"] = (
        lambda: oz.AdamW(learning_rate=one_cycle,
                         beta_1=one_cycle.momentum_schedule()),
        [])
    out["adam+ReduceLROnPlateau"] = (
        lambda: oz.Adam(learning_rate=3e-3),
        [oz.callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1,
                                        factor=0.3)])
    return out


def train_all(epochs, batch_size, verbose, only=None):
    (x, y), (xv, yv) = load_digits()
    steps_per_epoch = int(np.ceil(len(x) / batch_size))
    results = {}
    for name, (make, callbacks) in recipes(epochs, steps_per_epoch).items():
        if only and name not in only:
            continue
        print(f"\n=== {name} ===", flush=True)
        model = build_model(make())
        start = time.perf_counter()
        history = model.fit(x, y, validation_data=(xv, yv), epochs=epochs,
                            batch_size=batch_size, verbose=verbose,
                            callbacks=callbacks)
        results[name] = {
            "history": history.history,
            "seconds": time.perf_counter() - start,
        }
    return results


def write_outputs(results, out, surface_steps):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    for name, r in results.items():
        acc = r["history"]["val_accuracy"]
        ax.plot(range(1, len(acc) + 1), acc, marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"digits, one MLP, {keras.backend.backend()} backend")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    curves = out / "learning_curves.png"
    fig.savefig(curves, dpi=110)

    rows = ["| run | final val accuracy | final val loss | train time (s) |",
            "|---|---|---|---|"]
    ranked = sorted(results.items(),
                    key=lambda kv: -kv[1]["history"]["val_accuracy"][-1])
    for name, r in ranked:
        h = r["history"]
        rows.append(f"| {name} | {h['val_accuracy'][-1]:.4f} | "
                    f"{h['val_loss'][-1]:.4f} | {r['seconds']:.1f} |")
    table = "\n".join(rows)
    (out / "results.md").write_text(table + "\n")

    from keras_optzoo import playground

    paths = playground.compare(["sgd", "momentum", "nag", "rmsprop", "adam"],
                               "tutorial", steps=surface_steps)
    surface = out / "tutorial_surface.png"
    playground.plot_comparison("tutorial", paths, surface)
    return table, [curves, out / "results.md", surface]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs and a short surface run (for CI)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default="demo-output")
    parser.add_argument("--only", default=None,
                        help="comma-separated run names to train")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 15)
    print(f"keras-optzoo {oz.__version__} on the {keras.backend.backend()} "
          f"backend; {epochs} epochs per run")
    only = set(args.only.split(",")) if args.only else None
    results = train_all(epochs, batch_size=32,
                        verbose=2 if args.quick else 1, only=only)
    table, files = write_outputs(results, pathlib.Path(args.out),
                                 surface_steps=30 if args.quick else 200)
    print("\n" + table + "\n")
    for path in files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
