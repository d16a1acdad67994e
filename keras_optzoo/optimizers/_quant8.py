"""Blockwise 8-bit optimizer state, as bitsandbytes 0.50.2 stores it on CPU.

A state tensor is read in torch's row-major order (of the torch-layout
tensor: a Keras kernel goes through ``Layout.to_torch`` first), cut into
blocks of 256 elements (the last one may be shorter) and kept as one uint8
code per element plus one float32 ``absmax`` per block. A code indexes a
256-entry "dynamic" map of values in [-1, 1] (signed, for first moments) or
[0, 1] (unsigned, for second moments); the element's value is
``map[code] * absmax``.

bitsandbytes' CPU quantiser does not pick the nearest map entry of
``x / absmax``: it scales ``x`` by ``1 / absmax``, maps the result onto a
grid of 65536 bins over [-1, 1] (``fl32(v + 1) * 0.5 * 65535 + 0.5``, the
multiply-add rounded once to float32, truncated) and reads the code from a
table built by comparing each bin's left edge with the midpoints of the
map. :func:`quantize` does the same: the table is computed here in NumPy
(emulating its float32 arithmetic), the bin with keras.ops (the fused
multiply-add emulated with error-free transformations; checked equal to
bitsandbytes eagerly and under XLA) and the code is one gather.
Equivalently each code is reached from a fixed interval of scaled
values: :func:`thresholds` lists the at most 255 float32 boundaries, which
the tests use to probe every one.

Everything here is a pure function of keras.ops tensors; the tables are
NumPy constants.
"""

import functools

import keras
import numpy as np
from keras import ops

_TORCH = keras.backend.backend() == "torch"

#: Elements per quantisation block (bitsandbytes' optimizers use 256).
BLOCK = 256
#: Below this many elements a state stays float32 (bitsandbytes' default).
MIN_8BIT_SIZE = 4096

_F32 = np.float32
_BINS = 65536


def _linspace_f32(start, end, steps):
    """torch.linspace in float32 on CPU: the first half counted up from
    ``start``, the second down from ``end``, each point one fused
    multiply-add of the float32 step (emulated exactly in float64)."""
    start, end = _F32(start), _F32(end)
    step = _F32((end - start) / _F32(steps - 1))
    out = np.empty(steps, _F32)
    for i in range(steps):
        if i < steps // 2:
            out[i] = _F32(np.float64(start) + np.float64(step) * i)
        else:
            out[i] = _F32(np.float64(end)
                          - np.float64(step) * (steps - 1 - i))
    return out


@functools.lru_cache(maxsize=None)
def dynamic_map(signed):
    """bitsandbytes' ``create_dynamic_map(signed)`` (7 exponent bits, 8
    bits in all), as a sorted float32 array of 256 values.

    For each decade 10^-6 ... 10^0 the map holds the midpoints of an even
    split of [0.1, 1] scaled to that decade (twice as many per decade when
    unsigned, which has no sign bit), both signs when signed, then 0 and 1,
    zeros up to 256 entries, sorted.
    """
    values = []
    for decade in range(7):
        count = 2 ** decade + 1 if signed else 2 ** (decade + 1) + 1
        edges = _linspace_f32(0.1, 1.0, count)
        middles = ((edges[:-1] + edges[1:]) / _F32(2.0)).astype(_F32)
        scale = 10.0 ** (decade - 6)
        values.extend((middles * _F32(scale)).astype(_F32))
        if signed:
            values.extend((middles * _F32(-scale)).astype(_F32))
    values += [_F32(0.0), _F32(1.0)]
    values += [_F32(0.0)] * (256 - len(values))
    table = np.sort(np.asarray(values, _F32))
    table.setflags(write=False)
    return table


def _bin_of(scaled):
    """The bin (0 ... 65535) bitsandbytes' CPU quantiser reads for a scaled
    float32 value: ``uint16((clamp(v, -1, 1) + 1) * 0.5 * 65535 + 0.5)``."""
    v = np.clip(scaled, _F32(-1.0), _F32(1.0)).astype(_F32)
    unit = ((v + _F32(1.0)) * _F32(0.5)).astype(_F32)
    # one fused multiply-add, rounded to float32, then truncated
    fused = (unit.astype(np.float64) * 65535.0 + 0.5).astype(_F32)
    return np.floor(fused).astype(np.int64)


def _bin_table(table):
    """Code of each bin: the number of map midpoints below the bin's left
    edge ``-1 + 2 i / 65535`` (float32), at most 255."""
    mids = (_F32(0.5) * (table[:-1] + table[1:])).astype(_F32)
    i = np.arange(_BINS)
    edge = (_F32(-1.0)
            + (_F32(2.0) * i.astype(_F32)) / _F32(_BINS - 1)).astype(_F32)
    return np.minimum(np.searchsorted(mids, edge, side="left"),
                      255).astype(np.int64)


def _ordered(x):
    """float32 -> int64 that orders like the floats."""
    bits = x.astype(_F32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _from_ordered(k):
    k = np.asarray(k, np.int64)
    bits = np.where(k < 0, (-k) | 0x80000000, k) & 0xFFFFFFFF
    return bits.astype(np.uint32).view(np.int32).view(_F32)


@functools.lru_cache(maxsize=None)
def thresholds(signed):
    """``(t, codes)``: a scaled value v gets ``codes[k]`` with k the number
    of thresholds ``t <= v`` (``t`` sorted float32, ``codes`` int32, one
    longer). The threshold of each change of code along the bins is the
    smallest float32 whose bin is the changed one, found by bisection on the
    floats' ordering."""
    bins = _bin_table(dynamic_map(signed))
    change = np.nonzero(bins[1:] != bins[:-1])[0] + 1
    low = np.full(change.shape, _ordered(np.array([-1.0], _F32))[0])
    high = np.full(change.shape, _ordered(np.array([1.0], _F32))[0])
    while np.any(high - low > 1):
        mid = (low + high) // 2
        reached = _bin_of(_from_ordered(mid)) >= change
        high = np.where(reached, mid, high)
        low = np.where(reached, low, mid)
    t = _from_ordered(high)
    codes = np.concatenate([bins[:1], bins[change]]).astype(np.int32)
    return t, codes


@functools.lru_cache(maxsize=None)
def _bin_codes(signed):
    codes = _bin_table(dynamic_map(signed)).astype(np.int32)
    codes.setflags(write=False)
    return codes


def _lookup(scaled, signed):
    """bitsandbytes' own route: the bin
    ``floor(fl32(fl32(v + 1) * 0.5 * 65535 + 0.5))`` (the multiply-add
    rounded once, emulated exactly by :func:`fma`) and its entry of the
    65536-bin table: one gather per element (checked against bitsandbytes
    at and next to every one of :func:`thresholds` by
    tests/test_8bit.py)."""
    v = ops.clip(scaled, -1.0, 1.0)
    unit = (v + 1.0) * 0.5
    fused = fma(unit, 65535.0, ops.full_like(unit, 0.5))
    # a NaN (a NaN state element, or an inf one scaled by 1/inf) casts to
    # an arbitrary integer: clipped to bin 0, whose code (0) is the one
    # bitsandbytes' cast gives it
    bins = ops.clip(ops.cast(ops.floor(fused), "int32"), 0, 65535)
    return ops.take(ops.convert_to_tensor(_bin_codes(signed)), bins)


def num_blocks(size):
    return -(-int(size) // BLOCK)


def quantized(size):
    """Whether a tensor of ``size`` elements gets 8-bit state."""
    return int(size) >= MIN_8BIT_SIZE


def _blocks(flat, size):
    pad = num_blocks(size) * BLOCK - size
    if pad:
        flat = ops.pad(flat, [[0, pad]])
    return ops.reshape(flat, (-1, BLOCK))


def quantize(x, signed):
    """``(codes, absmax)`` of a float32 tensor in torch layout: uint8 codes
    of shape ``(size,)`` and float32 absmax of shape ``(blocks,)``."""
    size = int(np.prod(x.shape))
    blocks = _blocks(ops.reshape(x, (-1,)), size)
    magnitude = ops.abs(blocks)
    # bitsandbytes' CPU kernel keeps a running maximum with `>`, which a NaN
    # never passes: a NaN element does not enter its block's absmax (its own
    # code becomes 0, as the cast of a NaN bin gives here too), while an inf
    # makes the absmax inf
    magnitude = ops.where(ops.isnan(magnitude), ops.zeros_like(magnitude),
                          magnitude)
    absmax = ops.max(magnitude, axis=1)
    empty = ops.equal(absmax, 0.0)
    inverse = 1.0 / ops.where(empty, ops.ones_like(absmax), absmax)
    scaled = ops.reshape(blocks * inverse[:, None], (-1,))[:size]
    code = _lookup(scaled, signed)
    empty_el = ops.reshape(
        ops.broadcast_to(empty[:, None], (num_blocks(size), BLOCK)),
        (-1,))[:size]
    code = ops.where(empty_el, ops.zeros_like(code), code)
    return ops.cast(code, "uint8"), absmax


def dequantize(codes, absmax, shape, signed):
    """The float32 tensor (torch layout ``shape``) the state stands for."""
    size = int(np.prod(shape))
    values = ops.take(ops.convert_to_tensor(dynamic_map(signed)),
                      ops.cast(codes, "int32"))
    blocks = _blocks(values, size) * absmax[:, None]
    return ops.reshape(ops.reshape(blocks, (-1,))[:size], shape)


def _split(a):
    big = a * 4097.0  # 2**12 + 1: Veltkamp's split of a float32
    high = big - (big - a)
    return high, a - high


def fma(x, y, z):
    """``x * y + z`` rounded once, as torch's CPU kernels compute
    ``add(alpha=)`` and ``addcmul`` (a fused multiply-add), emulated in
    float32 with error-free transformations (Dekker's product, Knuth's
    sum): equal to the fused result except in rare double-rounding cases.
    ``y`` may be a Python float (taken as float32)."""
    if _TORCH:
        # torch's own fused kernels (what bitsandbytes' CPU path calls):
        # one kernel instead of the ~20 of the emulation
        import torch

        if isinstance(y, float):
            return torch.add(z, x, alpha=float(np.float32(y)))
        return torch.addcmul(z, x, y)
    if isinstance(y, float):
        # split in float32 (a Python float would split in double)
        y32 = np.float32(y)
        y_high, y_low = (float(part) for part in _split(y32))
        y = float(y32)
    else:
        y_high, y_low = _split(y)
    product = x * y
    x_high, x_low = _split(x)
    product_err = (((x_high * y_high - product) + x_high * y_low)
                   + x_low * y_high) + x_low * y_low
    total = product + z
    back = total - product
    sum_err = (product - (total - back)) + (z - back)
    exact = total + (sum_err + product_err)
    # the error terms are NaN where a product or split overflows (inf - inf):
    # there the rounded sum is what the fused operation gives (inf, or a
    # finite value within one rounding where only the split overflowed)
    return ops.where(ops.isfinite(exact), exact, total)


def state_bytes(size, moments_signed):
    """Bytes of bitsandbytes' state for a tensor of ``size`` elements with
    the given moments (True: signed map, False: unsigned)."""
    if not quantized(size):
        return 4 * size * len(moments_signed)
    return len(moments_signed) * (size + 4 * num_blocks(size))
