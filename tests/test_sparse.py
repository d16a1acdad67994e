"""Sparse (Embedding) gradients.

On TensorFlow an Embedding's gradient arrives as ``tf.IndexedSlices``; every
optimizer must give the same result as with the equivalent dense gradient
(torch semantics with ``nn.Embedding(sparse=False)``, torch's default: rows
not in the batch get a zero gradient and still take momentum / decay steps).
``tf.IndexedSlices`` exist only on TensorFlow, so those tests are defined
only there. On every backend (TF included) a real Embedding model trained
with ``fit`` must match torch.optim training the same network.
"""

import numpy as np
import pytest
import torch

import keras
from keras import ops

import harness
import specs

VOCAB, DIM, SEQ, N = 12, 3, 4, 16


def _configs():
    return specs.configs_with({"sgd": "momentum",
                               "rmsprop": "centered_momentum_wd",
                               "adam": "amsgrad", "adagrad": "wd"})


def _data():
    rng = np.random.default_rng(0)
    # ids 10 and 11 never occur: their rows get zero gradient every step
    ids = rng.integers(0, VOCAB - 2, size=(N, SEQ)).astype("int32")
    y = rng.normal(size=(N, 1)).astype("float32")
    return ids, y


def _keras_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((SEQ,), dtype="int32"),
        keras.layers.Embedding(VOCAB, DIM),
        keras.layers.Flatten(),
        keras.layers.Dense(1),
    ])
    model.compile(optimizer=optimizer, loss="mse",
                  jit_compile=harness.backend() != "torch")
    return model


def _torch_train(spec, config, weights, ids, y, steps):
    emb, kernel, bias = (torch.tensor(np.asarray(w), requires_grad=True)
                         for w in weights)
    opt = specs.make_torch(spec, [emb, kernel, bias], config.kwargs)
    idx = torch.tensor(ids, dtype=torch.long)
    target = torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        out = emb[idx].reshape(N, SEQ * DIM) @ kernel + bias
        loss = torch.mean((out - target) ** 2)
        loss.backward()
        opt.step()
    return [t.detach().numpy() for t in (emb, kernel, bias)]


@pytest.mark.parametrize("spec,config", _configs())
def test_embedding_training_matches_torch(spec, config):
    ids, y = _data()
    steps = 15
    model = _keras_model(spec.cls(**config.kwargs))
    init = [ops.convert_to_numpy(w) for w in model.weights]
    model.fit(ids, y, batch_size=N, epochs=steps, shuffle=False, verbose=0)
    ours = [ops.convert_to_numpy(w) for w in model.weights]
    theirs = _torch_train(spec, config, init, ids, y, steps)
    # the never-used rows move only through momentum/decay (or not at all)
    harness.assert_trajectory_close(ours, theirs, init, rtol=2e-5,
                                    what="torch.optim (dense Embedding)")


if keras.backend.backend() == "tensorflow":
    # tf.IndexedSlices exist only on TensorFlow: JAX and torch differentiate
    # an embedding lookup to a dense gradient, so there is no sparse case to
    # compare there (the test above covers Embedding training on them).
    import tensorflow as tf

    def _slices_and_dense(rng):
        # duplicate indices (3 twice) must be summed like the dense gradient
        indices = np.array([3, 0, 7, 3, 9], "int64")
        values = rng.normal(size=(len(indices), DIM)).astype("float32")
        slices = tf.IndexedSlices(tf.constant(values), tf.constant(indices),
                                  tf.constant([VOCAB, DIM], "int64"))
        return slices, tf.convert_to_tensor(slices)

    @pytest.mark.parametrize("compiled", [False, True],
                             ids=["eager", "tf.function"])
    @pytest.mark.parametrize("spec,config", _configs())
    def test_indexed_slices_equal_dense(spec, config, compiled):
        rng = np.random.default_rng(1)
        init = [rng.normal(size=(VOCAB, DIM)).astype("float32"),
                rng.normal(size=(DIM,)).astype("float32")]
        sparse_vars = [keras.Variable(x) for x in init]
        dense_vars = [keras.Variable(x) for x in init]
        sparse_opt = spec.cls(**config.kwargs)
        dense_opt = spec.cls(**config.kwargs)

        def apply_sparse(g):
            sparse_opt.apply(g, sparse_vars)

        def apply_dense(g):
            dense_opt.apply(g, dense_vars)

        if compiled:
            apply_sparse, apply_dense = (tf.function(apply_sparse),
                                         tf.function(apply_dense))
        for _ in range(6):
            slices, dense = _slices_and_dense(rng)
            assert isinstance(slices, tf.IndexedSlices)
            other = tf.constant(rng.normal(size=(DIM,)).astype("float32"))
            apply_sparse([slices, other])
            apply_dense([dense, other])
        for a, b in zip(sparse_vars, dense_vars):
            np.testing.assert_array_equal(ops.convert_to_numpy(a),
                                          ops.convert_to_numpy(b))
        for a, b in zip(sparse_opt.variables, dense_opt.variables):
            np.testing.assert_array_equal(ops.convert_to_numpy(a),
                                          ops.convert_to_numpy(b))

    def test_embedding_gradient_really_is_indexed_slices():
        """The premise: Keras's Embedding on TF yields tf.IndexedSlices."""
        ids, y = _data()
        model = _keras_model("sgd")
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(ids) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        assert isinstance(grads[0], tf.IndexedSlices)
