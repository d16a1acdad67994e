"""Fine-tuning with parameter groups, layer-wise lr decay, warm-up + cosine
and SWA, on scikit-learn's digits.

    python examples/finetuning.py            # 20 + 40 epochs, ~20 s
    python examples/finetuning.py --quick    # 1 + 5 epochs (CI)
    python examples/finetuning.py --out DIR  # default docs/images

The PyTorch fine-tuning recipe, with one keras-optzoo optimizer:

1. "Pre-training": a small backbone (stem, block_1, block_2: Dense +
   BatchNormalization + ReLU each) with a 5-way head is trained on the
   digits 0-4 only.
2. Fine-tuning: the same backbone with a new 10-way ``head`` on all ten
   digits, with ``oz.AdamW(weight_decay=0.05, param_groups=...)`` where the
   groups come from ``oz.param_groups.layer_decay(model, 0.7, layer_ids)``:
   BEiT/timm layer-wise lr decay (stem x0.343, block_1 x0.49, block_2
   x0.7) and, as timm's helper does, no weight decay on biases and
   normalisation scales and offsets (the ``oz.param_groups.no_weight_decay``
   rule). The head groups get ``learning_rate = 10 * peak``: a 10x head
   learning rate (a group's number rate is relative to the schedule's
   base rate, here the peak).
3. One schedule drives every group (as torch's schedulers do): linear
   warm-up + cosine (``CosineWithWarmup``), then from epoch ``swa_start``
   ``SWALR`` anneals to a constant ``swa_lr`` while
   ``oz.callbacks.WeightAveraging`` averages the weights once an epoch (SWA).
   At the end the average is copied in and ``update_bn`` recomputes the
   BatchNormalization statistics, as ``torch.optim.swa_utils`` does.

Prints the groups, the test accuracy before and after SWA, and draws
``finetuning_lrs.png``: each group's learning rate at every optimizer step,
read from the optimizer with ``optimizer.group_learning_rates()`` at each
epoch start (dots) and computed for every step from the schedule and the
groups' factors (lines).
"""

import argparse
import os
import pathlib
import random
import re
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_optzoo as oz  # noqa: E402

BATCH_SIZE = 128


def load_digits(seed=0):
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return (x[order[:split]], y[order[:split]]), (x[order[split:]], y[order[split:]])


def full_batches(x, y):
    """The first whole batches of (x, y): with no smaller last batch, the
    train step is compiled for one shape only (JAX, TF)."""
    n = len(x) // BATCH_SIZE * BATCH_SIZE
    return x[:n], y[:n]


def set_seed(seed):
    """``keras.utils.set_random_seed`` without its TensorFlow import (5 s on
    the JAX and torch backends): Keras's initializers draw their seeds from
    Python's ``random``, ``fit`` shuffles with NumPy."""
    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


def backbone_layers():
    """stem, block_1, block_2: Dense + BatchNormalization + ReLU each (flat
    layers, not nested models: a nested model costs a lot per call on the
    torch backend)."""
    layers = []
    for name in ("stem", "block_1", "block_2"):
        layers += [keras.layers.Dense(64, name=f"{name}_dense"),
                   keras.layers.BatchNormalization(name=f"{name}_norm"),
                   keras.layers.Activation("relu", name=f"{name}_relu")]
    return layers


def with_head(backbone, classes, name):
    """A model of the (shared) backbone layers and a new Dense head."""
    inputs = keras.Input((64,))
    h = inputs
    for layer in backbone:
        h = layer(h)
    return keras.Model(inputs, keras.layers.Dense(classes, name=name)(h))


#: Layer ids for layer decay, as timm numbers a ViT (stem 0, blocks 1..n,
#: head n + 1): the first regex found in a variable's path wins.
LAYER_IDS = {r"stem_": 0, r"block_1_": 1, r"block_2_": 2, r"head": 3}


def _accuracy(model, x, y):
    # a direct call: no predict function to compile for a few hundred rows
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return float(np.mean(np.argmax(logits, axis=-1) == y))


class GroupLearningRates(keras.callbacks.Callback):
    """Reads every param group's learning rate from the optimizer at the
    start of each epoch (the rate of the step about to be taken), with
    ``optimizer.group_learning_rates()``: ``{"default": rate,
    "param_groups[0]": rate, ...}``, what torch users read as
    ``[g["lr"] for g in optimizer.param_groups]``. Read once an epoch, not
    every step: each read is a few eager ops.
    """

    def __init__(self):
        super().__init__()
        self.steps = []
        self.rates = []  # one row per read, one column per param group

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        rates = opt.group_learning_rates()
        rates.pop("default")  # every variable is in a group here
        self.steps.append(int(keras.ops.convert_to_numpy(opt.iterations)))
        self.rates.append(list(rates.values()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 + 5 epochs (CI)")
    parser.add_argument("--out", default="docs/images",
                        help="folder for finetuning_lrs.png")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    (x, y), (x_test, y_test) = load_digits()
    set_seed(0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # ---- 1. "pre-training" on the digits 0-4
    backbone = backbone_layers()
    pretrained = with_head(backbone, 5, "pretrain_head")
    pretrained.compile(optimizer=oz.AdamW(learning_rate=1e-2), loss=loss)
    seen = y < 5
    pre_epochs = 1 if args.quick else 20
    pretrained.fit(*full_batches(x[seen], y[seen]), batch_size=BATCH_SIZE,
                   epochs=pre_epochs, verbose=0)
    first = y_test < 5
    print(f"pre-training ({pre_epochs} epochs, digits 0-4): test accuracy on "
          f"0-4 {_accuracy(pretrained, x_test[first], y_test[first]):.4f}")

    # ---- 2. fine-tuning: the same backbone layers, a new 10-way head
    model = with_head(backbone, 10, "head")
    epochs = 5 if args.quick else 40
    swa_start = 3 if args.quick else 30       # first SWA epoch
    anneal_epochs = 1 if args.quick else 3
    steps_per_epoch = len(x) // BATCH_SIZE      # full batches only
    peak = 1e-3             # the schedule's peak; each group: x its factor
    warmup = steps_per_epoch                   # one epoch of warm-up

    # timm's param_groups_layer_decay: one group per (layer, decay / no
    # decay), lr_scale = 0.7 ** (3 - layer id).
    groups = oz.param_groups.layer_decay(model, 0.7, layer_ids=LAYER_IDS)
    head_vars = {id(v) for v in model.get_layer("head").trainable_variables}
    for group in groups:
        if id(group["params"][0]) in head_vars:
            # 10x head rate: a group's number learning_rate is relative to
            # the schedule's base rate (SequentialLR's: its first child's,
            # the cosine's peak), as torch scales each group's initial_lr.
            group["learning_rate"] = 10.0 * peak

    # warm-up + cosine over the whole run; from swa_start SWALR takes over,
    # annealing from where the cosine is to swa_lr in anneal_epochs epochs.
    cosine = oz.schedules.CosineWithWarmup(
        peak, num_warmup_steps=warmup,
        num_training_steps=epochs * steps_per_epoch)
    at_swa_start = float(keras.ops.convert_to_numpy(
        cosine(swa_start * steps_per_epoch)))
    swa_lr = 0.05 * peak
    schedule = oz.schedules.SequentialLR(
        [cosine, oz.schedules.SWALR(at_swa_start, swa_lr,
                                    anneal_epochs=anneal_epochs,
                                    steps_per_epoch=steps_per_epoch)],
        milestones=[swa_start], steps_per_epoch=steps_per_epoch)

    opt = oz.AdamW(learning_rate=schedule, weight_decay=0.05,
                   param_groups=groups)
    # Built now so that the recorder can read the groups before step 0.
    opt.build(model.trainable_variables)
    model.compile(optimizer=opt, loss=loss)

    layer_names = {i: k.rstrip("_") for k, i in LAYER_IDS.items()}
    labels = []
    for group in groups:
        layer = next(i for k, i in LAYER_IDS.items()
                     if re.search(k, group["params"][0].path))
        labels.append(layer_names[layer] + (
            " (no wd)" if group.get("weight_decay") == 0.0 else ""))
    # each group's rate is schedule(step) x this factor: its learning_rate
    # relative to the schedule's base rate (peak), times its lr_scale
    factors = np.array([g.get("learning_rate", peak) / peak * g["lr_scale"]
                        for g in groups])
    print(f"{'group':<17}{'x rate':>8}{'wd':>6}  variables")
    for label, group, factor in zip(labels, groups, factors):
        paths = ", ".join("/".join(v.path.split("/")[-2:])
                          for v in group["params"])
        wd = group.get("weight_decay", opt.weight_decay)
        print(f"{label:<17}{factor:>8.3f}{wd:>6.2f}  {paths}")

    recorder = GroupLearningRates()
    swa = oz.callbacks.WeightAveraging(avg_fn="swa", start=swa_start)
    model.fit(*full_batches(x, y), batch_size=BATCH_SIZE, epochs=epochs,
              verbose=0,
              callbacks=[recorder, swa])

    acc_before = _accuracy(model, x_test, y_test)
    swa.transfer_weights()       # the SWA average, for good
    oz.callbacks.update_bn(model, x, batch_size=BATCH_SIZE)
    acc_after = _accuracy(model, x_test, y_test)
    print(f"fine-tuning ({epochs} epochs, SWA from epoch {swa_start}, "
          f"{swa.n_averaged} models averaged)")
    print(f"test accuracy before SWA: {acc_before:.4f}")
    print(f"test accuracy after SWA:  {acc_after:.4f}")

    # Every step's rate by the documented rule (a group's rate is
    # schedule(step) x its factor), checked against the rates read from the
    # optimizer.
    steps = np.arange(epochs * steps_per_epoch)
    rates = keras.ops.convert_to_numpy(schedule(keras.ops.convert_to_tensor(
        steps, "int32"))).astype("float64")[:, None] * factors
    read_steps = np.asarray(recorder.steps)
    read = np.asarray(recorder.rates)
    print(f"group rates read from the optimizer at {len(read_steps)} epoch "
          "starts equal schedule x factor: "
          f"{np.allclose(read, rates[read_steps], rtol=1e-5, atol=1e-12)}")

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    colours = {}
    for column, (label, group) in enumerate(zip(labels, groups)):
        layer = label.split()[0]
        if group.get("weight_decay") == 0.0:
            # same rate as the layer's decayed group: dotted on top of it
            ax.plot(steps, rates[:, column], color="k", linestyle=(0, (1, 3)),
                    linewidth=1.0, alpha=0.7)
            continue
        colour = colours.setdefault(layer, f"C{len(colours)}")
        ax.plot(steps, rates[:, column], color=colour, linewidth=3.0,
                alpha=0.8, label=f"{layer}: x{factors[column]:.3g}")
        ax.plot(read_steps, read[:, column], "o", color=colour,
                markersize=2.5, markeredgecolor="k", markeredgewidth=0.3)
    ax.axvspan(swa_start * steps_per_epoch, steps[-1] + 1, color="0.9",
               zorder=0, label="SWALR + averaging")
    ax.set_yscale("log")
    ax.set_ylim(bottom=1e-6)
    ax.plot([], [], color="k", linestyle=(0, (1, 3)), linewidth=1.0,
            label="its no-weight-decay group (bias, norm)")
    ax.plot([], [], "o", color="0.5", markersize=2.5, markeredgecolor="k",
            markeredgewidth=0.3, label="read from the optimizer")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("Per-group learning rates: layer decay 0.7, 10x head, "
                 f"warm-up + cosine, SWA ({keras.backend.backend()} backend)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower center", ncol=2)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "finetuning_lrs.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
