"""Sparse (Embedding) gradients.

On TensorFlow an Embedding's gradient arrives as ``tf.IndexedSlices``; every
optimizer must give the same result as with the equivalent dense gradient
(torch semantics with ``nn.Embedding(sparse=False)``, torch's default: rows
not in the batch get a zero gradient and still take momentum / decay steps).
``tf.IndexedSlices`` exist only on TensorFlow, so those tests are defined
only there; the JAX counterpart is ``jax.experimental.sparse.BCOO`` and the
torch one a sparse COO tensor (both accepted by Keras's own optimizers in
``apply``), tested on their backend. On every backend (TF included) a real Embedding model trained
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
    """Sparse gradients are densified (or, for LazyAdam, read by rows) by the
    base class before any algorithm sees them: one optimizer per mechanism
    (specs.MECHANISMS) covers the paths."""
    return specs.mechanism_configs()


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
    """The torch port: the Dense kernel (in, out) is a Linear weight
    (out, in) there (the layout rule, keras_optzoo/layout.py)."""
    emb, kernel, bias = (torch.tensor(np.ascontiguousarray(w),
                                      requires_grad=True)
                         for w in (weights[0], np.asarray(weights[1]).T,
                                   weights[2]))
    opt = specs.make_torch(spec, [emb, kernel, bias], config.kwargs)
    idx = torch.tensor(ids, dtype=torch.long)
    target = torch.tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        out = torch.nn.functional.linear(emb[idx].reshape(N, SEQ * DIM),
                                         kernel, bias)
        loss = torch.mean((out - target) ** 2)
        loss.backward()
        opt.step()
    if callable(getattr(opt, "eval", None)):
        # a schedule-free reference: `fit` ends in eval mode (the model
        # holds x), as the reference's eval() puts x in its parameters
        opt.eval()
    return [emb.detach().numpy(), kernel.detach().numpy().T,
            bias.detach().numpy()]


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


def _sparse_rows(rng):
    """Row-sparse gradient parts: duplicate indices (3 twice) must be summed
    like the dense gradient."""
    indices = np.array([3, 0, 7, 3, 9], "int64")
    values = rng.normal(size=(len(indices), DIM)).astype("float32")
    return indices, values


def _check_sparse_equals_dense(spec, config, make_sparse, to_dense,
                               compiled=False):
    """Steps one optimizer with sparse gradients and a twin with the equal
    dense ones; parameters and optimizer state must be identical."""
    rng = np.random.default_rng(1)
    init = [rng.normal(size=(VOCAB, DIM)).astype("float32"),
            rng.normal(size=(DIM,)).astype("float32")]
    sparse_vars = [keras.Variable(x) for x in init]
    dense_vars = [keras.Variable(x) for x in init]
    sparse_opt = spec.cls(**config.kwargs)
    dense_opt = spec.cls(**config.kwargs)
    if compiled:  # JAX: stateless_apply under jax.jit, as fit runs it
        import jax

        sparse_opt.build(sparse_vars)
        dense_opt.build(dense_vars)
        step = jax.jit(sparse_opt.stateless_apply)
        dense_step = jax.jit(dense_opt.stateless_apply)
        state = ([v.value for v in sparse_opt.variables],
                 [v.value for v in sparse_vars])
        dense_state = ([v.value for v in dense_opt.variables],
                       [v.value for v in dense_vars])
    for _ in range(2):
        sparse = make_sparse(*_sparse_rows(rng))
        other = ops.convert_to_tensor(
            rng.normal(size=(DIM,)).astype("float32"))
        dense = to_dense(sparse)
        if compiled:
            new_vars, new_opt = step(state[0], [sparse, other], state[1])
            state = (new_opt, new_vars)
            new_vars, new_opt = dense_step(dense_state[0], [dense, other],
                                           dense_state[1])
            dense_state = (new_opt, new_vars)
        else:
            sparse_opt.apply([sparse, other], sparse_vars)
            dense_opt.apply([dense, other], dense_vars)
    if compiled:
        pairs = list(zip(state[0] + state[1],
                         dense_state[0] + dense_state[1]))
    else:
        pairs = list(zip(sparse_vars + sparse_opt.variables,
                         dense_vars + dense_opt.variables))
    for a, b in pairs:
        if compiled:
            # XLA fuses the densifying scatter-add into the update, so the
            # jitted steps are two different programs: equal to float32
            # rounding (observed <= 2.4e-7 absolute), not bit for bit.
            np.testing.assert_allclose(ops.convert_to_numpy(a),
                                       ops.convert_to_numpy(b),
                                       rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(ops.convert_to_numpy(a),
                                          ops.convert_to_numpy(b))


if keras.backend.backend() == "jax":
    # JAX sparse gradients (jax.experimental.sparse.BCOO), which Keras's own
    # optimizers accept in apply / stateless_apply (issue 9).
    from jax.experimental import sparse as jax_sparse

    def _bcoo(indices, values):
        return jax_sparse.BCOO((values, indices[:, None]),
                               shape=(VOCAB, DIM))

    @pytest.mark.parametrize("compiled", [False, True],
                             ids=["eager", "jit-stateless_apply"])
    @pytest.mark.parametrize("spec,config", specs.mechanism_configs())
    def test_bcoo_equal_dense(spec, config, compiled):
        _check_sparse_equals_dense(spec, config, _bcoo,
                                   lambda g: g.todense(), compiled)

if keras.backend.backend() == "torch":
    # torch sparse COO gradients: Keras's torch-backend optimizers accept
    # them in apply (checked on keras.optimizers.Adam below), so ours must.

    def _coo(indices, values):
        return torch.sparse_coo_tensor(torch.tensor(indices[None, :]),
                                       torch.tensor(values), (VOCAB, DIM),
                                       check_invariants=False)

    def test_keras_accepts_torch_sparse_gradients():
        """The premise: a Keras built-in applies a sparse COO gradient."""
        opt = keras.optimizers.Adam(0.1)
        var = keras.Variable(np.ones((VOCAB, DIM), "float32"))
        opt.apply([_coo(*_sparse_rows(np.random.default_rng(0)))], [var])

    @pytest.mark.parametrize("spec,config", specs.mechanism_configs())
    def test_torch_sparse_equal_dense(spec, config):
        _check_sparse_equals_dense(spec, config, _coo,
                                   lambda g: g.to_dense())
