"""The learning-rate range test (``keras_optzoo.callbacks.LRFinder``) on
scikit-learn's digits with ``oz.SGD(momentum=0.9)``.

    python examples/lr_finder.py            # 200 steps, a few seconds
    python examples/lr_finder.py --quick    # 30 steps (CI)
    python examples/lr_finder.py --out DIR  # default docs/images

The learning rate grows exponentially from 1e-5 to 10 batch by batch while the
loss is recorded; ``lr_finder.png`` shows loss against learning rate and the
suggested rate (the steepest descent of the smoothed loss), which is printed.
The model's weights are restored afterwards, so real training can follow.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_optzoo as oz  # noqa: E402
from keras_optzoo.callbacks import LRFinder  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 steps (CI)")
    parser.add_argument("--out", default="docs/images",
                        help="folder for lr_finder.png")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.data))
    x = (data.data[order] / 16.0).astype("float32")
    y = data.target[order].astype("int32")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=oz.SGD(learning_rate=0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    steps = 30 if args.quick else 200
    finder = LRFinder.run(model, x, y, batch_size=32, min_lr=1e-5,
                          max_lr=10.0, num_steps=steps)
    suggestion = finder.suggestion()
    print(f"recorded {len(finder.history['lr'])} of {steps} steps"
          f"{' (stopped on divergence)' if finder.diverged else ''}")
    print(f"suggested learning rate: {suggestion:.3g}")

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    finder.plot(ax)
    ax.set_title("LR range test: oz.SGD(momentum=0.9) on digits "
                 f"({keras.backend.backend()} backend)", fontsize=10)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lr_finder.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
