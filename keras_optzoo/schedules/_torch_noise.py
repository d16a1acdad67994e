"""The numbers ``torch.randn(1, generator=g)`` draws, without torch.

timm's schedulers perturb the learning rate at time ``t`` with a normal
number drawn from a fresh ``torch.Generator`` seeded with ``noise_seed + t``
(redrawn while its magnitude is not below ``noise_pct``). A schedule here is
a pure function of the step, so those numbers are computed once, at
construction, for every ``t`` of the noise range, by reproducing what torch
2.x does on the CPU for one element:

* ``manual_seed(s)`` seeds a 32-bit Mersenne Twister (mt19937, the standard
  ``init_genrand`` initialisation) with ``s mod 2**32``;
* a double uniform takes two 32-bit outputs ``a, b``: ``u = ((a << 32 | b)
  mod 2**53) * 2**-53``;
* a normal is Box-Muller on two such uniforms, ``u1`` then ``u2``: ``r =
  sqrt(-2 log1p(-u2))``, ``theta = 2 pi u1``; the draw is ``r cos(theta)``
  and the generator keeps ``r sin(theta)`` for the next draw (used by the
  second ``randn`` call before new uniforms are taken);
* ``randn`` returns float32, so each draw is rounded to float32.

Up to 56 normal pairs per seed (the first 224 outputs of the generator,
which depend only on the seeded state) are computed for all seeds at once
with NumPy integer arithmetic; a seed that rejects more draws than that is
finished by Python's own Mersenne Twister (``random.Random``, the same
generator) set to the seeded state. The transcendental functions are
Python's ``math`` ones (the C library's, as torch's CPU kernel uses), so the
numbers are torch's bit for bit; tests/test_timm_schedules.py compares them
with torch for thousands of seeds.
"""

import functools
import math
import random

import numpy as np

_U64 = np.uint64
_MASK32 = _U64(0xFFFFFFFF)
_INIT_MULT = _U64(1812433253)
_MT_M = 397
# Outputs 0..226 of the first twist need only the seeded state.
_MAX_PAIRS = 56


def _temper(y):
    y = y ^ (y >> _U64(11))
    y = y ^ ((y << _U64(7)) & _U64(0x9D2C5680))
    y = y ^ ((y << _U64(15)) & _U64(0xEFC60000))
    return y ^ (y >> _U64(18))


def _first_outputs(seeds, count):
    """The first ``count`` (<= 227) 32-bit outputs of mt19937 seeded with
    each of ``seeds`` (uint64 values below 2**32), as uint64 arrays."""
    x = seeds
    low, high = [x], []
    for j in range(1, _MT_M + count + 1):
        x = (_INIT_MULT * (x ^ (x >> _U64(30))) + _U64(j)) & _MASK32
        if j <= count:
            low.append(x)
        if j >= _MT_M:
            high.append(x)
    outputs = []
    for i in range(count):
        y = (low[i] & _U64(0x80000000)) | (low[i + 1] & _U64(0x7FFFFFFF))
        odd = (y & _U64(1)).astype(bool)
        v = high[i] ^ (y >> _U64(1)) ^ np.where(odd, _U64(0x9908B0DF), _U64(0))
        outputs.append(_temper(v))
    return outputs


def _uniform(hi, lo):
    bits = ((hi & _U64(0x1FFFFF)) << _U64(32)) | lo
    return bits.astype(np.float64) * 2.0**-53


def _box_muller(u1, u2):
    """``(r cos(theta), r sin(theta))`` rounded to float32, per element."""
    first, second = [], []
    for a, b in zip(u1.tolist(), u2.tolist()):
        r = math.sqrt(-2.0 * math.log1p(-b))
        theta = 2.0 * math.pi * a
        first.append(r * math.cos(theta))
        second.append(r * math.sin(theta))
    as32 = lambda v: np.asarray(v, np.float64).astype(np.float32)  # noqa: E731
    return as32(first).astype(np.float64), as32(second).astype(np.float64)


def _one_seed(seed, pct, std):
    """timm's draw loop for one seed, on Python's Mersenne Twister."""
    state = [seed & 0xFFFFFFFF]
    for j in range(1, 624):
        x = state[-1]
        state.append((1812433253 * (x ^ (x >> 30)) + j) & 0xFFFFFFFF)
    rng = random.Random()
    rng.setstate((3, tuple(state) + (624,), None))
    while True:
        w = [rng.getrandbits(32) for _ in range(4)]
        u1 = (((w[0] << 32) | w[1]) & ((1 << 53) - 1)) * 2.0**-53
        u2 = (((w[2] << 32) | w[3]) & ((1 << 53) - 1)) * 2.0**-53
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        for z in (r * math.cos(theta), r * math.sin(theta)):
            noise = float(np.float32(z)) * std
            if abs(noise) < pct:
                return noise


def _pairs_needed(pct, std):
    """Normal pairs to draw for all seeds so that few need the fallback."""
    if std == 0.0:
        return 1
    accept = math.erf(pct / (std * math.sqrt(2.0)))
    if accept >= 1.0:
        return 1
    draws = math.log(1e-3) / math.log1p(-accept) if accept > 0 else math.inf
    return int(min(_MAX_PAIRS, max(1, math.ceil(draws / 2.0))))


def timm_normal_noise(seeds, pct, std):
    """timm's ``Scheduler._calculate_noise`` for ``noise_type="normal"``:
    for each seed, the first ``torch.randn(1) * std`` of a generator seeded
    with it whose magnitude is below ``pct`` (float64 NumPy array)."""
    seeds = np.asarray([int(s) & 0xFFFFFFFF for s in seeds], dtype=np.uint64)
    result = np.zeros(seeds.shape, np.float64)
    if seeds.size == 0:
        return result
    pairs = _pairs_needed(pct, std)
    outputs = _first_outputs(seeds, 4 * pairs)
    todo = np.ones(seeds.shape, bool)
    for p in range(pairs):
        idx = np.nonzero(todo)[0]
        if idx.size == 0:
            break
        u1 = _uniform(outputs[4 * p][idx], outputs[4 * p + 1][idx])
        u2 = _uniform(outputs[4 * p + 2][idx], outputs[4 * p + 3][idx])
        for draw in _box_muller(u1, u2):
            noise = draw * std
            take = todo[idx] & (np.abs(noise) < pct)
            result[idx[take]] = noise[take]
            todo[idx[take]] = False
    for i in np.nonzero(todo)[0]:
        result[i] = _one_seed(int(seeds[i]), pct, std)
    return result


@functools.lru_cache(maxsize=16)
def noise_table(seed, start, stop, pct, std):
    """float32 noise for ``t`` in ``[start, stop)`` with seeds ``seed + t``
    (cached: a schedule rebuilt from its config reuses it)."""
    values = timm_normal_noise(range(seed + start, seed + stop), pct, std)
    table = values.astype(np.float32)
    table.setflags(write=False)
    return table
