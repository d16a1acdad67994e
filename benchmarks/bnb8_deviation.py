"""Deviation of AdamW8bit, Lion8bit and AdEMAMix8bit from bitsandbytes
0.50.2 (CPU), eager and (JAX/TF) compiled, on tests/bnb8_oracle.py's
problem (a 5000-element Dense kernel, a 4608-element Conv2D kernel, a
bias; 50 steps with a learning-rate change).

    PYTHONPATH=$PWD KERAS_BACKEND=jax python benchmarks/bnb8_deviation.py

Prints per case: the fraction of elements within 1e-5, the fraction beyond
1e-3 and the max of |theta - theta_bnb| / max|theta_bnb - theta_0| (the
scale of each element's own tensor), then the max per tensor.
"""

import os
import sys
import time

import keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tests"))

import bnb8_oracle as oracle  # noqa: E402
import harness  # noqa: E402
from keras_optzoo.optimizers import bnb8bit  # noqa: E402

CASES = [
    ("AdamW8bit", {"lr": 1e-3, "weight_decay": 1e-2}),
    ("Lion8bit", {"lr": 1e-4, "weight_decay": 0.1}),
    ("Lion8bit", {"lr": 1e-4}),
    ("AdEMAMix8bit", {"lr": 1e-3}),
    ("AdEMAMix8bit", {"lr": 1e-3, "t_alpha": 40, "t_beta3": 40}),
]


def main():
    lays = oracle.layouts()
    init, grads = oracle.problem()
    for name, torch_kwargs in CASES:
        kwargs = dict(torch_kwargs)
        kwargs["learning_rate"] = kwargs.pop("lr")
        lrs = oracle.lrs(torch_kwargs["lr"])
        ref = oracle.run_bnb(name, torch_kwargs, init, grads, lrs, lays)
        for mode in harness.modes():
            start = time.time()
            ours = harness.run_ours(getattr(bnb8bit, name)(**kwargs), init,
                                    grads, lrs, mode, oracle.NAMES)
            per_tensor = [oracle.deviation([o], [r], [i])[2]
                          for o, r, i in zip(ours, ref, init)]
            print(keras.backend.backend(), name, kwargs, mode,
                  oracle.deviation(ours, ref, init), per_tensor,
                  f"{time.time() - start:.1f}s", flush=True)


if __name__ == "__main__":
    main()
