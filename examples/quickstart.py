"""Quickstart: train a Keras model with a keras-optzoo optimizer, save it and
load it back without ``custom_objects``.

    python examples/quickstart.py           # 10 epochs, a few seconds
    python examples/quickstart.py --quick   # 1 epoch (CI)

Prints the test accuracy before and after the save/load round trip (they are
equal), the loaded optimizer's type, and shows ``oz.get`` and
``oz.list_optimizers``. Draws no picture; ``--out`` is accepted for symmetry
with the other examples and unused.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_optzoo as oz  # noqa: E402


def load_digits(seed=0):
    from sklearn.datasets import load_digits as sk_digits

    data = sk_digits()
    x = (data.data / 16.0).astype("float32")
    y = data.target.astype("int32")
    order = np.random.default_rng(seed).permutation(len(x))
    split = int(0.8 * len(x))
    return (x[order[:split]], y[order[:split]]), (x[order[split:]], y[order[split:]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch (CI)")
    parser.add_argument("--out", default="docs/images", help="unused")
    args = parser.parse_args(argv)

    (x, y), (x_test, y_test) = load_digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=oz.AdamW(learning_rate=1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=1 if args.quick else 10, verbose=0)
    _, acc = model.evaluate(x_test, y_test, verbose=0)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)  # no custom_objects needed
    _, acc_loaded = loaded.evaluate(x_test, y_test, verbose=0)

    print(f"test accuracy:            {acc:.4f}")
    print(f"test accuracy after load: {acc_loaded:.4f}")
    print(f"loaded optimizer:         {type(loaded.optimizer)}")
    print(f'oz.get("nag", learning_rate=0.05): {oz.get("nag", learning_rate=0.05)!r}')
    print(f"oz.list_optimizers(): {oz.list_optimizers()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
