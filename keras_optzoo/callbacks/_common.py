"""Helpers shared by the keras-optzoo callbacks."""

import numpy as np
from keras import ops


def unwrap(optimizer):
    """The optimizer that owns the learning rate (LossScaleOptimizer wraps)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def print_msg(message):
    """Prints through Keras's own message channel: stdout, or absl logging
    after ``keras.config.disable_interactive_logging()``."""
    try:
        from keras.src.utils.io_utils import print_msg as keras_print_msg
    except ImportError:  # a Keras that moved it (tested)
        import keras

        if keras.config.is_interactive_logging_enabled():
            print(message)
        else:
            from absl import logging

            logging.info(message)
        return
    keras_print_msg(message)


def as_float(value):
    """A 0-d tensor or variable of any backend as a Python float."""
    return float(np.asarray(ops.convert_to_numpy(value)))


# ------------------------------------------------- ReduceLROnPlateau state
#: Layout of the optimizer variable ``plateau_state`` (float32, shape (11,)):
#: ``[has_best, b0, b1, b2, b3, num_bad_epochs, cooldown_counter,
#: r0, r1, r2, r3]`` where ``b0..b3`` are the four 16-bit words (most
#: significant first) of the IEEE-754 double ``best`` and ``r0..r3`` those of
#: the double learning rate the callback last set (0 when it set none). Each
#: word is an integer < 2**16, exact in float32 on every backend (JAX without
#: x64 included), so both survive save/load bit for bit, as Python floats do
#: in torch.
PLATEAU_STATE_SIZE = 11
#: The layout before the best metric was kept in double precision:
#: ``[has_best, best (float32), num_bad_epochs, cooldown_counter]``.
LEGACY_PLATEAU_STATE_SIZE = 4


def _words(value):
    bits = int(np.array(value, np.float64).view(np.uint64))
    return [(bits >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]


def _double(words):
    bits = 0
    for word in words:
        bits = (bits << 16) | (int(word) & 0xFFFF)
    return float(np.array(bits, np.uint64).view(np.float64))


def encode_plateau_state(has_best, best, bad, cooldown, lr=0.0):
    """Plain numbers -> the float32 vector stored in ``plateau_state``."""
    return np.array([float(bool(has_best))] + _words(best)
                    + [bad, cooldown] + _words(lr), "float32")


def decode_plateau_state(state):
    """The stored vector -> ``(has_best, best, bad, cooldown, lr)`` as
    Python numbers (``best`` and ``lr`` Python floats, bit-exact)."""
    state = np.asarray(state, np.float64).reshape(-1)
    if state.size == LEGACY_PLATEAU_STATE_SIZE:
        has_best, best, bad, cooldown = state
        return (bool(has_best), float(np.float32(best)), int(bad),
                int(cooldown), 0.0)
    return (bool(state[0]), _double(state[1:5]), int(state[5]),
            int(state[6]), _double(state[7:11]))


def upgrade_plateau_state(state):
    """A saved ``plateau_state`` of the legacy (4,) layout -> the current."""
    return encode_plateau_state(*decode_plateau_state(state))
