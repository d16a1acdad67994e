"""The one registry of keras-optzoo optimizers.

Every optimizer class is added with :func:`register_optimizer`, which also
registers it for Keras serialization (so ``keras.models.load_model`` finds it
without ``custom_objects``) and fills the shared parts of its docstring.
Presets are names bound to a class plus keyword arguments ("nag" is SGD with
momentum 0.9 and Nesterov). :func:`get` and :func:`list_optimizers` read it;
so do the README table and the tests.
"""

import difflib
import fnmatch

import keras

PACKAGE = "keras_optzoo"

_ENTRIES = {}

_SHARED_DOCS = {
    "weight_decay": (
        "weight_decay: Float >= 0, or a "
        "`keras.optimizers.schedules.LearningRateSchedule` (scheduled weight "
        "decay: its value at the number of updates already applied is used "
        "each step). L2 penalty. Unless the optimizer says "
        "otherwise it is coupled, as in torch: `weight_decay * param` is "
        "added to the gradient. Variables excluded with "
        "`exclude_from_weight_decay()` get none. Defaults to `{default}`."
    ),
    "decoupled_weight_decay": (
        "decoupled_weight_decay: Bool. When True the decay is decoupled "
        "(AdamW-style): `param *= 1 - learning_rate * weight_decay` before "
        "the update, instead of the L2 term. Defaults to `False`."
    ),
    "maximize": (
        "maximize: Bool. Maximise the objective: the gradient is negated "
        "before anything else. Defaults to `False`."
    ),
    "learning_rate": (
        "learning_rate: A real number >= 0 (int and numpy scalars are "
        "accepted), a `keras.optimizers.schedules.LearningRateSchedule` or a "
        "callable with no arguments. Schedules receive the number of updates "
        "already applied. Defaults to `{default}`."
    ),
    "base": (
        "**kwargs: The Keras base arguments: `clipnorm`, `clipvalue`, "
        "`global_clipnorm`, `use_ema`, `ema_momentum`, "
        "`ema_overwrite_frequency`, `loss_scale_factor`, "
        "`gradient_accumulation_steps` and `name`, with Keras's meaning; "
        "and the gradient transforms every keras-optzoo optimizer takes: "
        "`agc_clip_factor` (float > 0 or None: adaptive gradient clipping "
        "of each output unit's gradient to `agc_clip_factor * max(unit "
        "parameter norm, agc_eps)`, as timm's `adaptive_clip_grad`; units "
        "are the last axis of a Keras kernel), `agc_eps` (float >= 0, "
        "default 1e-3), `gradient_centralization` (bool: subtract each "
        "output unit's mean from gradients of rank > 1, as "
        "pytorch-optimizer's `centralize_gradient`) and `gc_conv_only` "
        "(bool: only rank > 3, convolution kernels). Order: Keras's "
        "clipping, AGC, GC, `maximize`, weight decay, the update. "
        "`shard_state` (bool, JAX only: each piece of per-variable state "
        "is split along the data-parallel mesh axis of the active "
        "`keras.distribution`, on its first axis whose size divides by "
        "that axis's device count, replicated if none; ZeRO stage 1; "
        "a ValueError on TensorFlow and torch, a warning without a "
        "distribution). "
        "Unknown keyword arguments raise a ValueError."
    ),
}


class Entry:
    """A registry name: a class, the keyword arguments of a preset, a summary."""

    __slots__ = ("name", "cls", "kwargs", "summary", "preset")

    def __init__(self, name, cls, kwargs, summary, preset):
        self.name = name
        self.cls = cls
        self.kwargs = dict(kwargs)
        self.summary = summary
        #: False for the name of the class itself, True for a preset.
        self.preset = preset


def _fill_docstring(cls, defaults):
    doc = cls.__doc__ or ""
    indent = " " * 8
    for key, text in _SHARED_DOCS.items():
        marker = "{{" + key + "}}"
        if marker in doc:
            text = text.format(default=defaults.get(key))
            doc = doc.replace(marker, _wrap(text, indent))
    cls.__doc__ = doc


def _wrap(text, indent, width=79):
    import textwrap

    lines = textwrap.wrap(text, width - len(indent),
                          subsequent_indent="    ")
    return ("\n" + indent).join(lines)


def register_optimizer(name, summary, presets=None):
    """Class decorator: registers an optimizer under ``name`` (+ presets).

    Args:
        name: lower-case registry name of the class itself.
        summary: one line for the README table.
        presets: optional dict ``{preset_name: (kwargs, summary)}``.
    """

    def decorator(cls):
        import inspect

        defaults = {
            k: p.default
            for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        _fill_docstring(cls, defaults)
        cls = keras.saving.register_keras_serializable(package=PACKAGE)(cls)
        cls._oz_registry_name = name
        for key, kwargs, text, preset in [(name, {}, summary, False)] + [
            (k, v[0], v[1], True) for k, v in (presets or {}).items()
        ]:
            if key in _ENTRIES:
                raise ValueError(f"Optimizer name {key!r} is registered twice.")
            _ENTRIES[key] = Entry(key, cls, kwargs, text, preset)
        return cls

    return decorator


def default_name(cls):
    """The name an optimizer of class ``cls`` gets when none is given: its
    registry name ("adamw", "radam"; Keras would derive "adam_w", "r_adam"
    from the class name), made unique as Keras does ("adamw", "adamw_1",
    ...). None for a class that is not registered itself (a user's
    subclass): Keras then names it."""
    name = cls.__dict__.get("_oz_registry_name")
    if name is None:
        return None
    uid = keras.backend.get_uid(f"keras_optzoo.optimizer_name.{name}")
    return name if uid == 1 else f"{name}_{uid - 1}"


def list_optimizers(pattern="*"):
    """Sorted registry names matching a shell-style ``pattern`` ("adam*")."""
    if not isinstance(pattern, str):
        raise TypeError(
            "Argument `pattern` must be a str (a shell-style pattern such as "
            f"'adam*'). Received: pattern={pattern!r} (of type "
            f"{type(pattern).__name__})"
        )
    return sorted(n for n in _ENTRIES if fnmatch.fnmatchcase(n, pattern))


def classes():
    """Every registered class once, in registration order."""
    out = []
    for entry in _ENTRIES.values():
        if entry.cls not in out:
            out.append(entry.cls)
    return out


def entries():
    """All registry entries, sorted by name."""
    return [_ENTRIES[n] for n in sorted(_ENTRIES)]


def get(identifier, **overrides):
    """Returns a new optimizer for a registry name, or passes one through.

    Args:
        identifier: a registry name or preset ("nag", "adamw"; case does not
            matter), an optimizer instance (returned as is; overrides are then
            not allowed), a Keras serialization dict, or None (returned as
            is, as ``keras.optimizers.get(None)`` does).
        **overrides: constructor arguments that replace the preset's.

    Raises:
        ValueError: for an unknown name (with close matches suggested).
    """
    if identifier is None:
        # as keras.optimizers.get(None)
        if overrides:
            raise ValueError(
                "Keyword overrides need an optimizer name, not None. "
                f"Received: identifier=None, overrides={overrides}"
            )
        return None
    if isinstance(identifier, keras.optimizers.Optimizer):
        if overrides:
            raise ValueError(
                "Keyword overrides need an optimizer name, not an instance. "
                f"Received: identifier={identifier!r}, overrides={overrides}"
            )
        return identifier
    if isinstance(identifier, dict):
        return keras.optimizers.deserialize(identifier)
    if not isinstance(identifier, str):
        raise TypeError(
            "Argument `identifier` must be an optimizer name, an optimizer or "
            f"a config dict. Received: identifier={identifier!r}"
        )
    key = identifier.lower()
    if key not in _ENTRIES:
        close = difflib.get_close_matches(key, list(_ENTRIES), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown optimizer name: {identifier!r}.{hint} "
            f"Known names: {', '.join(list_optimizers())}."
        )
    entry = _ENTRIES[key]
    return entry.cls(**{**entry.kwargs, **overrides})


def markdown_table():
    """The README's optimizer table, generated from the registry."""
    rows = ["| name | class | preset arguments | what it is |",
            "|---|---|---|---|"]
    for entry in entries():
        args = ", ".join(f"{k}={v!r}" for k, v in entry.kwargs.items())
        rows.append(
            f"| `{entry.name}` | `{entry.cls.__name__}` | {args or '—'} "
            f"| {entry.summary} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    # Prints the README table: python -m keras_optzoo.registry
    # Run as __main__ this file is a second module: use the package's copy.
    from keras_optzoo import registry as _registry

    print(_registry.markdown_table())
