"""A ported model: a torch model and its Keras twin built from the same
weights, trained on the same batches, the zoo optimizer on the Keras one
and its reference on the torch one (DESIGN.md 2c, the layout rule).

The model has every layer kind whose Keras kernel layout differs from
torch's, so that any per-row, per-channel, factored or matrix computation
that reads a Keras variable in the wrong layout shows:

    tokens (B, 5) -> Embedding(11, 4) -> mean over tokens          (B, 4)
    image (B, 6, 6, 2) -> Conv2D(3, 3x3)
        -> DepthwiseConv2D(3x3, multiplier 2)
        -> Conv2DTranspose(2, 2x2) -> mean over space                (B, 2)
    concat (B, 6) -> Dense(8) -> LayerNormalization -> Dense(3)

No elementwise activations: XLA's and torch's float32 tanh differ in the
last bits (XLA evaluates its own approximation), which would add a
framework difference that the optimizers then amplify; LayerNormalization
keeps the model nonlinear.

Keras computes channels-last, torch channels-first; the image batch is
transposed for torch. The layers keep Keras's default names, from which the
layout rule reads their kinds (keras_optzoo/layout.py).
"""

import numpy as np
import torch

import keras

VOCAB, TOKENS, DIM = 11, 5, 4
BATCH, STEPS = 16, 10


class TorchTwin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, DIM)
        self.conv = torch.nn.Conv2d(2, 3, 3)
        self.depthwise = torch.nn.Conv2d(3, 6, 3, groups=3)
        self.transpose = torch.nn.ConvTranspose2d(6, 2, 2)
        self.fc = torch.nn.Linear(DIM + 2, 8)
        self.norm = torch.nn.LayerNorm(8, eps=1e-3)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, tokens, image):
        a = self.embedding(tokens).mean(dim=1)
        h = self.depthwise(self.conv(image))
        b = self.transpose(h).mean(dim=(2, 3))
        h = self.norm(self.fc(torch.cat([a, b], dim=1)))
        return self.head(h)


def keras_model():
    layers = keras.layers
    tokens = keras.Input((TOKENS,), dtype="int32")
    image = keras.Input((6, 6, 2))
    a = keras.ops.mean(layers.Embedding(VOCAB, DIM)(tokens), axis=1)
    h = layers.Conv2D(3, 3)(image)
    h = layers.DepthwiseConv2D(3, depth_multiplier=2)(h)
    b = keras.ops.mean(layers.Conv2DTranspose(2, 2)(h), axis=(1, 2))
    h = layers.Dense(8)(layers.Concatenate()([a, b]))
    h = layers.LayerNormalization(epsilon=1e-3)(h)
    return keras.Model([tokens, image], layers.Dense(3)(h))


def _pairs(model, twin):
    """[(keras variable, torch parameter name, keras value -> torch
    layout)]."""
    by_kind = {}
    for layer in model.layers:
        by_kind.setdefault(type(layer).__name__, []).append(layer)
    dense_fc, dense_head = by_kind["Dense"]

    def t(a):
        return np.ascontiguousarray(a.T)

    def conv(a):
        return np.ascontiguousarray(np.transpose(a, (3, 2, 0, 1)))

    def depthwise(a):
        kh, kw, c, m = a.shape
        return np.ascontiguousarray(
            np.transpose(a, (2, 3, 0, 1)).reshape(c * m, 1, kh, kw))

    def same(a):
        return a

    emb = by_kind["Embedding"][0]
    cv = by_kind["Conv2D"][0]
    dw = by_kind["DepthwiseConv2D"][0]
    ct = by_kind["Conv2DTranspose"][0]
    ln = by_kind["LayerNormalization"][0]
    return [
        (emb.embeddings, "embedding.weight", same),
        (cv.kernel, "conv.weight", conv), (cv.bias, "conv.bias", same),
        (dw.kernel, "depthwise.weight", depthwise),
        (dw.bias, "depthwise.bias", same),
        (ct.kernel, "transpose.weight", conv),
        (ct.bias, "transpose.bias", same),
        (dense_fc.kernel, "fc.weight", t), (dense_fc.bias, "fc.bias", same),
        (ln.gamma, "norm.weight", same), (ln.beta, "norm.bias", same),
        (dense_head.kernel, "head.weight", t),
        (dense_head.bias, "head.bias", same),
    ]


def data(seed=0):
    rng = np.random.default_rng(seed)
    n = BATCH * STEPS
    tokens = rng.integers(0, VOCAB, size=(n, TOKENS)).astype("int32")
    image = rng.normal(size=(n, 6, 6, 2)).astype("float32")
    target = rng.normal(size=(n, 3)).astype("float32")
    return tokens, image, target


def torch_twin(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return TorchTwin().to(dtype)


def twins(seed=0):
    """(keras model, torch twin, pairs) with the same initial weights."""
    twin = torch_twin(seed)
    keras.utils.set_random_seed(seed)
    model = keras_model()
    named = dict(twin.named_parameters())
    for variable, name, to_torch in _pairs(model, twin):
        # the torch layout of the keras variable must be the torch weight's
        value = named[name].detach().numpy()
        keras_value = _from_torch(to_torch, value, tuple(variable.shape))
        variable.assign(keras_value)
    return model, twin, _pairs(model, twin)


def _from_torch(to_torch, value, keras_shape):
    """Inverts ``to_torch`` on index arrays (no algebra to get wrong)."""
    index = np.arange(int(np.prod(keras_shape))).reshape(keras_shape)
    where = to_torch(index).reshape(-1)
    out = np.empty(index.size, value.dtype)
    out[where] = value.reshape(-1)
    return out.reshape(keras_shape)


def train_keras(model, optimizer, jit_compile, seed=0):
    tokens, image, target = data(seed)
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit_compile)
    model.fit([tokens, image], target, batch_size=BATCH, epochs=1,
              shuffle=False, verbose=0)


def train_torch(twin, make_optimizer, seed=0, before_step=None):
    """``make_optimizer(twin) -> optimizer``; trains ``twin`` in place."""
    dtype = next(twin.parameters()).dtype
    tokens, image, target = data(seed)
    optimizer = make_optimizer(twin)
    for step in range(STEPS):
        s = slice(step * BATCH, (step + 1) * BATCH)
        # the model's, not the optimizer's: some reference adapters
        # (DAdaptSGD's) have no zero_grad
        twin.zero_grad(set_to_none=True)
        out = twin(torch.tensor(tokens[s], dtype=torch.long),
                   torch.tensor(np.transpose(image[s], (0, 3, 1, 2)),
                                dtype=dtype))
        loss = torch.nn.functional.mse_loss(out, torch.tensor(target[s],
                                                              dtype=dtype))
        loss.backward()
        if before_step is not None:
            before_step(list(twin.parameters()))
        optimizer.step()
    if callable(getattr(optimizer, "eval", None)):
        # a schedule-free reference: Keras's fit ends in eval mode (the
        # model holds x), as the reference's eval() puts x in its params
        optimizer.eval()
    return twin


def deviation(pairs, torch_weights, init):
    """max |θ − θ_ref| / max |θ_ref − θ_0| over every weight, in torch's
    layout; ``torch_weights`` and ``init`` are lists in ``pairs`` order."""
    scale = max(float(np.max(np.abs(r - i)))
                for r, i in zip(torch_weights, init))
    dev = max(float(np.max(np.abs(
        to_torch(keras.ops.convert_to_numpy(v)).astype(np.float64) - r)))
        for (v, _, to_torch), r in zip(pairs, torch_weights))
    return dev / scale, scale


def torch_weights(pairs, twin):
    named = dict(twin.named_parameters())
    return [named[name].detach().double().numpy().copy()
            for _, name, _ in pairs]
