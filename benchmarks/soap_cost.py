"""SOAP: state bytes per parameter (ours vs pytorch-optimizer 4.1.0's SOAP)
for a 1024x1024 and a 4096x1024 Dense kernel, and on JAX the time of a
compiled plain step, a refresh step (QR) and the first step (eigh).

    KERAS_BACKEND=jax python benchmarks/soap_cost.py [--time-size 1024]
"""

import argparse
import time

import numpy as np
import torch

import keras
import keras_optzoo as oz


def reference_state_bytes(shape):
    from pytorch_optimizer import SOAP

    p = torch.zeros(shape, requires_grad=True)
    opt = SOAP([p])
    p.grad = torch.randn(shape)
    opt.step()
    total = 0
    for value in opt.state[p].values():
        for t in (value if isinstance(value, list) else [value]):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def our_state_bytes(shape):
    v = keras.Variable(np.zeros(shape, "float32"), name="kernel")
    opt = oz.SOAP()
    opt.build([v])
    return sum(int(np.prod(s.shape)) * 4 for s in opt.variables
               if len(s.shape) > 0)


def timing(n, m, repeats=5):
    import jax

    v = keras.Variable(np.zeros((n, m), "float32"), name="kernel")
    opt = oz.SOAP(precondition_frequency=10)
    opt.build([v])
    grads = [jax.numpy.asarray(np.random.default_rng(0).normal(
        size=(n, m)).astype("float32"))]

    @jax.jit
    def step(opt_vars, train_vars):
        return opt.stateless_apply(opt_vars, grads, train_vars)

    train_vars = [v.value]
    opt_vars = [x.value for x in opt.variables]
    it_index = [i for i, x in enumerate(opt.variables)
                if x.path.endswith("iteration")][0]

    def at(iteration):
        state = list(opt_vars)
        state[it_index] = jax.numpy.asarray(iteration, state[it_index].dtype)
        return state

    out = {}
    for label, iteration in (("first step (eigh)", 0), ("plain step", 1),
                             ("refresh step (QR)", 10)):
        state = at(iteration)
        jax.block_until_ready(step(state, train_vars))  # compile / warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(step(state, train_vars))
            times.append(time.perf_counter() - start)
        out[label] = min(times)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-size", type=int, default=1024)
    args = parser.parse_args()
    for keras_shape in ((1024, 1024), (1024, 4096)):
        torch_shape = keras_shape[::-1]
        n = int(np.prod(keras_shape))
        ours, theirs = our_state_bytes(keras_shape), \
            reference_state_bytes(torch_shape)
        print(f"Dense kernel {keras_shape} (torch {torch_shape}): state "
              f"bytes/param ours {ours / n:.2f}, pytorch-optimizer "
              f"{theirs / n:.2f}")
    if keras.backend.backend() == "jax":
        s = args.time_size
        result = timing(s, s)
        plain = result["plain step"]
        for label, seconds in result.items():
            print(f"JAX jit {s}x{s} {label}: {seconds * 1e3:.2f} ms "
                  f"({seconds / plain:.1f}x plain)")


if __name__ == "__main__":
    main()
