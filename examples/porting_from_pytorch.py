"""Porting a PyTorch training recipe to Keras: with keras-optzoo the weights
match torch's to float32 rounding; with Keras's built-in optimizers, given the
very same arguments, they do not.

    python examples/porting_from_pytorch.py            # ~20 s
    python examples/porting_from_pytorch.py --quick    # 2x10 steps (CI)
    python examples/porting_from_pytorch.py --out DIR  # default docs/images

Two recipes train one MLP (64-64-10, ReLU) on scikit-learn's digits, first in
PyTorch and then in Keras, starting from the same weights (torch's initial
weights are copied into the Keras model) and seeing the same batches in the
same order:

* "SGD + StepLR": ``torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=5e-4)``
  with ``StepLR`` dividing the rate by 10 halfway, on pixels scaled to [0, 1].
* "Adam, raw pixels": ``torch.optim.Adam(lr=1e-4)`` on the raw 0-16 pixel
  values.

Each Keras run uses the optimizer call a port would write, argument for
argument: ``oz.SGD(learning_rate=StepLR(...), momentum=0.9,
weight_decay=5e-4)`` versus ``keras.optimizers.SGD(...)`` with the same
arguments, and so on (the StepLR is keras-optzoo's in both: Keras has none).
For Adam a third run also spells out torch's defaults
(``beta_1=0.9, beta_2=0.999, epsilon=1e-8``), to show that what remains is
the update rule, not a default. The script prints max |w_keras - w_torch|
over all weights after the last step and draws the numbers as bars
(``porting.png``, log scale). The keras-optzoo differences are float32
rounding (the backends sum matrix products in a different order than torch).

Why the built-ins drift: Keras's SGD applies ``weight_decay`` decoupled
(torch adds it to the gradient), keeps the learning rate inside the momentum
buffer (so the StepLR drop acts gradually) and starts the buffer at zero;
Keras's Adam has ε = 1e-7 by default (torch 1e-8) and adds it to the
uncorrected √v. None of these is a bug; they are different algorithms with
the same names.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import torch  # noqa: E402  (before TensorFlow: see tests/conftest.py)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_optzoo as oz  # noqa: E402

HIDDEN = 64
BATCH = 32
KINDS = ("keras-optzoo", "Keras built-in", "Keras built-in, eps=1e-8")


def load_digits(raw):
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = data.data.astype("float32")
    if not raw:
        x = x / 16.0
    return x, data.target.astype("int64")


def batch_order(n, epochs, seed=0, batches_per_epoch=None):
    """The index batches of every epoch: a fresh permutation per epoch, the
    last partial batch dropped (``DataLoader(..., drop_last=True)``);
    ``batches_per_epoch`` keeps only the first batches (--quick)."""
    rng = np.random.default_rng(seed)
    per_epoch = n // BATCH
    if batches_per_epoch:
        per_epoch = min(per_epoch, batches_per_epoch)
    return [np.split(rng.permutation(n)[:per_epoch * BATCH], per_epoch)
            for _ in range(epochs)]


def torch_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 10))


def torch_weights(model):
    """torch's parameters in Keras's layout (Linear's weight is (out, in),
    Dense's kernel (in, out))."""
    out = []
    for layer in (model[0], model[2]):
        out.append(layer.weight.detach().numpy().T.copy())
        out.append(layer.bias.detach().numpy().copy())
    return out


def train_torch(recipe, x, y, order):
    model = torch_model()
    initial = torch_weights(model)
    optimizer, scheduler = recipe["torch"](model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch_batches in order:
        for idx in epoch_batches:
            idx = torch.from_numpy(idx)
            optimizer.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return initial, torch_weights(model)


def train_keras(optimizer, initial, x, y, order):
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(HIDDEN, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.set_weights(initial)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = y.astype("int32")
    for epoch_batches in order:
        for idx in epoch_batches:
            model.train_on_batch(x[idx], y[idx])
    return [np.asarray(w) for w in model.get_weights()]


def recipes(epochs, steps_per_epoch):
    step_size = max(1, epochs // 2)

    def step_lr():
        return oz.schedules.StepLR(0.1, step_size=step_size, gamma=0.1,
                                   steps_per_epoch=steps_per_epoch)

    sgd_args = dict(momentum=0.9, weight_decay=5e-4)
    return {
        "SGD + StepLR": {
            "raw": False,
            "torch": lambda params: (
                opt := torch.optim.SGD(params, lr=0.1, **sgd_args),
                torch.optim.lr_scheduler.StepLR(opt, step_size, gamma=0.1)),
            "keras-optzoo": lambda: oz.SGD(learning_rate=step_lr(),
                                           **sgd_args),
            "Keras built-in": lambda: keras.optimizers.SGD(
                learning_rate=step_lr(), **sgd_args),
        },
        "Adam, raw pixels": {
            "raw": True,
            "torch": lambda params: (torch.optim.Adam(params, lr=1e-4), None),
            "keras-optzoo": lambda: oz.Adam(learning_rate=1e-4),
            "Keras built-in": lambda: keras.optimizers.Adam(learning_rate=1e-4),
            # torch's defaults spelled out: what is left is the algorithm.
            "Keras built-in, eps=1e-8": lambda: keras.optimizers.Adam(
                learning_rate=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
        },
    }


def compare(epochs, batches_per_epoch=None):
    """recipe -> {"keras-optzoo": diff, "Keras built-in": diff, "steps": n}."""
    results = {}
    n = len(load_digits(raw=False)[0])
    order = batch_order(n, epochs, batches_per_epoch=batches_per_epoch)
    steps = sum(len(e) for e in order)
    for name, recipe in recipes(epochs, len(order[0])).items():
        x, y = load_digits(recipe["raw"])
        initial, theirs = train_torch(recipe, x, y, order)
        row = {"steps": steps}
        for kind in KINDS:
            if kind not in recipe:
                continue
            ours = train_keras(recipe[kind](), initial, x, y, order)
            row[kind] = max(float(np.max(np.abs(a - b)))
                            for a, b in zip(ours, theirs))
        row["moved"] = max(float(np.max(np.abs(a - b)))
                           for a, b in zip(theirs, initial))
        results[name] = row
    return results


def table(results):
    """A plain-text table of the differences."""
    head = ["recipe", "steps", "torch moved", *KINDS]
    rows = [head]
    for name, r in results.items():
        rows.append([name, str(r["steps"]), f"{r['moved']:.3f}"]
                    + [f"{r[k]:.2e}" if k in r else "-" for k in KINDS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = ("max |w_keras - w_torch| over all weights after the last step; "
            "'torch moved' is max |w_T - w_0| in torch.")
    return "\n".join(lines + ["", note])


def draw(results, path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    names = list(results)
    xs = np.arange(len(names))
    width = 0.27
    colors = dict(zip(KINDS, ("C0", "C3", "C1")))
    labels = dict(zip(KINDS, ("keras-optzoo, same arguments",
                              "Keras built-in, same arguments",
                              "Keras built-in, torch's defaults spelled out "
                              "(ε=1e-8)")))
    seen = set()
    for x, name in zip(xs, names):
        kinds = [k for k in KINDS if k in results[name]]
        for j, kind in enumerate(kinds):
            value = results[name][kind]
            pos = x + (j - (len(kinds) - 1) / 2) * width
            ax.bar(pos, value, width, color=colors[kind],
                   label=None if kind in seen else labels[kind])
            seen.add(kind)
            ax.annotate(f"{value:.1e}", (pos, value), ha="center",
                        va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xticks(xs, [f"{n}\n({results[n]['steps']} steps)" for n in names])
    ax.set_ylabel("max |w_keras − w_torch| after training")
    ax.set_title("Same PyTorch recipe ported to Keras "
                 f"({keras.backend.backend()} backend)", fontsize=10)
    values = [r[k] for r in results.values() for k in KINDS if k in r]
    low, high = min(values), max(values)
    ax.set_ylim(low / 10, high * 20)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, fontsize=8)
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 short epochs of 10 batches instead of 10 "
                        "full ones (for CI)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", default="docs/images",
                        help="folder for porting.png")
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 10)
    print(f"keras-optzoo {oz.__version__} on the {keras.backend.backend()} "
          f"backend, torch {torch.__version__}; {epochs} epochs per recipe")
    results = compare(epochs, batches_per_epoch=10 if args.quick else None)
    print("\n" + table(results) + "\n")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "porting.png"
    draw(results, path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
