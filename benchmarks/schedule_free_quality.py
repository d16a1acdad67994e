"""Schedule-free AdamW against AdamW with a cosine schedule on digits.

    KERAS_BACKEND=jax python -m benchmarks.schedule_free_quality \
        --out benchmarks/results/schedule_free_digits.json \
        --plot benchmarks/results/schedule_free_digits.png

scikit-learn's 8x8 digits (1797 images; the last 397 are the validation
set), an MLP 64-128-128-10, batch 32, the same budget for both: ``--epochs``
epochs (45 steps each). Both get a linear warmup over the first 5% of the
steps and decoupled weight decay 1e-2 ... the same for both:

* ``oz.AdamW`` with ``oz.schedules.CosineWithWarmup`` (cosine to 0 at the
  end of the budget: the schedule knows the budget);
* ``oz.ScheduleFreeAdamW(warmup_steps=...)``, validated at its evaluation
  point x with ``oz.callbacks.ScheduleFreeEval`` (no budget given).

Each runs over a grid of learning rates and ``--seeds`` seeds; the figure
shows the validation loss per epoch at each optimizer's best rate (mean
over seeds) and the final validation loss against the rate. The JSON holds
every curve.
"""

import argparse
import json
import os

import numpy as np

RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
BATCH = 32
WARMUP_FRACTION = 0.05
WEIGHT_DECAY = 1e-2


def _data():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def _model(optimizer, seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    return model


def _optimizer(kind, rate, total_steps):
    import keras_optzoo as oz

    warmup = max(1, int(WARMUP_FRACTION * total_steps))
    if kind == "adamw_cosine":
        schedule = oz.schedules.CosineWithWarmup(
            rate, num_warmup_steps=warmup, num_training_steps=total_steps)
        return oz.AdamW(learning_rate=schedule, weight_decay=WEIGHT_DECAY)
    return oz.ScheduleFreeAdamW(learning_rate=rate, warmup_steps=warmup,
                                weight_decay=WEIGHT_DECAY)


def run(epochs, seeds):
    import keras_optzoo as oz

    (x, y), (xv, yv) = _data()
    steps_per_epoch = -(-len(x) // BATCH)
    total = epochs * steps_per_epoch
    out = []
    for kind in ("adamw_cosine", "schedule_free_adamw"):
        for rate in RATES:
            for seed in range(seeds):
                model = _model(_optimizer(kind, rate, total), seed)
                callbacks = ([oz.callbacks.ScheduleFreeEval()]
                             if kind == "schedule_free_adamw" else [])
                history = model.fit(x, y, batch_size=BATCH, epochs=epochs,
                                    validation_data=(xv, yv), shuffle=True,
                                    verbose=0, callbacks=callbacks)
                record = {"optimizer": kind, "learning_rate": rate,
                          "seed": seed,
                          "val_loss": history.history["val_loss"],
                          "val_accuracy": history.history["val_accuracy"]}
                out.append(record)
                print(f"{kind:20s} lr={rate:g} seed={seed} final val_loss "
                      f"{record['val_loss'][-1]:.4f} val_acc "
                      f"{record['val_accuracy'][-1]:.4f}", flush=True)
    return {"epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "batch": BATCH, "rates": list(RATES), "seeds": seeds,
            "warmup_fraction": WARMUP_FRACTION,
            "weight_decay": WEIGHT_DECAY, "runs": out}


def summary(result):
    """{optimizer: {rate: (mean final val loss, std)}} and each one's best
    rate."""
    table = {}
    for r in result["runs"]:
        table.setdefault(r["optimizer"], {}).setdefault(
            r["learning_rate"], []).append(r["val_loss"][-1])
    stats = {k: {rate: (float(np.mean(v)), float(np.std(v)))
                 for rate, v in rates.items()}
             for k, rates in table.items()}
    best = {k: min(rates, key=lambda rate: rates[rate][0])
            for k, rates in stats.items()}
    return stats, best


LABELS = {"adamw_cosine": "AdamW + cosine (warmup)",
          "schedule_free_adamw": "ScheduleFreeAdamW (warmup), at x"}


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats, best = summary(result)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for kind, rate in best.items():
        curves = np.array([r["val_loss"] for r in result["runs"]
                           if r["optimizer"] == kind
                           and r["learning_rate"] == rate])
        epochs = np.arange(1, curves.shape[1] + 1)
        mean = curves.mean(axis=0)
        left.plot(epochs, mean, label=f"{LABELS[kind]}, lr={rate:g}")
        left.fill_between(epochs, curves.min(axis=0), curves.max(axis=0),
                          alpha=0.2)
        rates = sorted(stats[kind])
        right.errorbar(rates, [stats[kind][r][0] for r in rates],
                       yerr=[stats[kind][r][1] for r in rates], marker="o",
                       capsize=3, label=LABELS[kind])
    left.set_xlabel("epoch")
    left.set_ylabel("validation loss")
    left.set_yscale("log")
    left.set_title(f"digits MLP, {result['epochs']} epochs "
                   f"({result['seeds']} seeds, best rate each)")
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.set_xlabel("learning rate")
    right.set_ylabel("final validation loss")
    right.set_title("same budget, every rate")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument("--from-json", default=None,
                        help="re-plot a saved result")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
    else:
        result = run(args.epochs, args.seeds)
        import keras

        result["backend"] = keras.backend.backend()
    stats, best = summary(result)
    for kind, rates in stats.items():
        for rate, (mean, std) in sorted(rates.items()):
            mark = " (best)" if rate == best[kind] else ""
            print(f"{kind:20s} lr={rate:<6g} final val_loss {mean:.4f} "
                  f"± {std:.4f}{mark}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
