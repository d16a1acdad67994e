"""Loading weights all or nothing (a guarded hook on Keras's loader).

Keras's ``model.load_weights`` (``keras.src.saving.saving_lib.
load_weights_only``) walks the model and assigns each object's saved
variables as it reaches it: the layers first, the optimizer after them. A
keras-optzoo optimizer refuses state of another layout (an AdamW file
loaded into a model compiled with Lion, Muon, an amsgrad AdamW or a
Lookahead) with a ``ValueError``, but by then the layers already hold the
file's weights, and Keras offers no hook that runs before it assigns
anything.

:func:`install` therefore wraps ``saving_lib.load_weights_only``: before
Keras's loader runs, the layout of the optimizer state in the file is
checked against the model's keras-optzoo optimizers (each one's own
``_load_targets``, the rule its ``load_own_variables`` applies), reading
only the shapes of the saved optimizer variables and the saved step count.
A mismatch raises the optimizer's error and nothing is assigned. The check
covers ``.keras`` and ``.weights.h5`` files (``Model.load_weights``,
``keras.saving.load_weights``); sharded ``.weights.json`` files, remote
paths, ``skip_mismatch=True`` and optimizers that are not built yet go to
Keras's loader unchecked (an unbuilt optimizer cannot know its layout).
``keras.models.load_model`` needs no check: it builds a new model, which it
does not return when loading fails.

The wrapper also notes, on a model whose weights are loaded from a file
holding a :class:`~keras_optzoo.callbacks.WeightAveraging` average that
the model does not carry (a model made by ``load_model``), which file that
was, so that a ``WeightAveraging`` callback started without
``resume_from`` can warn that it starts a new average. The same note is
made by a wrapper of ``saving_lib.load_model``.

Guarded: if Keras moves or changes these private functions, :func:`install`
leaves Keras as it is and returns False (loading then assigns the layers
before the optimizer's error, as before); ``tests/test_user_reports.py``
checks both.
"""

import contextlib
import functools
import inspect
import zipfile

import keras

#: Marks our wrappers (install is idempotent).
_WRAPPED = "_keras_optzoo_wrapped"
#: The model attribute naming the file whose average the model did not
#: take (read by WeightAveraging).
SAVED_AVERAGE_ATTR = "_oz_saved_average_file"
#: keras_optzoo.callbacks.averaging.STATE_ATTR (not imported: this module
#: is imported by the optimizers' base, before the callbacks).
_AVERAGE_GROUP = "oz_averaged_weights"


def install():
    """Wraps Keras's ``load_weights_only`` and ``load_model`` (see the
    module docstring). Returns True when the checks are active."""
    try:
        from keras.src.saving import saving_lib
    except ImportError:
        return False
    ok = True
    for name, make in (("load_weights_only", _wrap_load_weights),
                       ("load_model", _wrap_load_model)):
        original = getattr(saving_lib, name, None)
        if original is None or not callable(original):
            ok = False
            continue
        if getattr(original, _WRAPPED, False):
            continue
        try:
            params = list(inspect.signature(original).parameters)
        except (TypeError, ValueError):
            ok = False
            continue
        if params[:2] != (["model", "filepath"] if name ==
                          "load_weights_only" else ["filepath",
                                                    "custom_objects"]):
            ok = False  # a signature we do not know: leave it alone
            continue
        wrapper = make(original)
        setattr(wrapper, _WRAPPED, True)
        setattr(saving_lib, name, wrapper)
    return ok


def _wrap_load_weights(original):
    @functools.wraps(original)
    def load_weights_only(model, filepath, *args, **kwargs):
        skip = kwargs.get("skip_mismatch", args[0] if args else False)
        try:
            with _weights_file(filepath) as f:
                states = [] if f is None or skip else _saved_states(model, f)
                saved_average = None if f is None else \
                    _saved_average(model, f, filepath)
        except Exception:  # noqa: BLE001 - unreadable here: Keras decides
            states, saved_average = [], None
        for check, shapes, first in states:
            check(shapes, lambda first=first: first)  # raises on a mismatch
        result = original(model, filepath, *args, **kwargs)
        if saved_average is not None:
            object.__setattr__(model, SAVED_AVERAGE_ATTR, saved_average)
        return result

    return load_weights_only


def _wrap_load_model(original):
    @functools.wraps(original)
    def load_model(filepath, *args, **kwargs):
        model = original(filepath, *args, **kwargs)
        try:
            with _weights_file(filepath) as f:
                saved = None if f is None else \
                    _saved_average(model, f, filepath)
        except Exception:  # noqa: BLE001 - the note is best effort
            saved = None
        if saved is not None:
            object.__setattr__(model, SAVED_AVERAGE_ATTR, saved)
        return model

    return load_model


@contextlib.contextmanager
def _weights_file(filepath):
    """The h5py file of the weights in ``filepath`` (a ``.keras`` archive
    or a ``.weights.h5`` file), or None where this module does not read
    the format."""
    path = str(filepath) if not hasattr(filepath, "read") else ""
    if "://" in path or not path.endswith((".keras", ".weights.h5")):
        yield None
        return
    import h5py

    if path.endswith(".weights.h5"):
        with h5py.File(path, "r") as f:
            yield f
        return
    with zipfile.ZipFile(path, "r") as archive:
        if "model.weights.h5" not in archive.namelist():
            yield None
            return
        with archive.open("model.weights.h5", "r") as raw:
            with h5py.File(raw, "r") as f:
                yield f


def _optimizers(optimizer, path):
    """(optimizer, path of its state in the file) for ``optimizer`` and
    the optimizers it wraps (``inner_optimizer``: Lookahead,
    LossScaleOptimizer), as Keras's loader names them."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return
    yield optimizer, path
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        yield from _optimizers(inner, path + "/inner_optimizer")


def _saved_states(model, f):
    """(check, saved shapes, saved step count) for each built keras-optzoo
    optimizer of ``model`` (``check`` is its ``_load_targets``), read from
    the h5py file ``f``: only the shapes and one scalar are read."""
    out = []
    for optimizer, path in _optimizers(getattr(model, "optimizer", None),
                                       "optimizer"):
        check = getattr(optimizer, "_load_targets", None)
        if check is None or not optimizer.built:
            continue
        group = f.get(f"{path}/vars")
        keys = [] if group is None else sorted(group.keys(), key=int)
        shapes = [tuple(group[k].shape) for k in keys]
        first = group[keys[0]][()] if keys else None
        out.append((check, shapes, first))
    return out


def _saved_average(model, f, filepath):
    """``filepath`` when ``f`` holds a WeightAveraging average that
    ``model`` does not carry (it is not loaded), else None."""
    if getattr(model, _AVERAGE_GROUP, None) is not None:
        return None
    group = f.get(f"{_AVERAGE_GROUP}/vars")
    if group is None or "0" not in group:
        return None
    return str(filepath)
