"""Generic machinery behind :mod:`jvla.config`: typed frozen dataclasses built from parsed YAML.

The dataclasses *are* the schema: a field's type annotation says what a value must be, and
:func:`fld` adds a numeric range. :func:`build` turns a nested mapping into those dataclasses,
:func:`merge` deep-merges override mappings (a profile, a test's overrides) and
:func:`expand_shared` resolves a block of shared keys (``training:``) into several sections.
Every problem raises :class:`ConfigError` naming the key path, what was expected and what was
found, e.g. ``params.yaml: stage3.learning_rate: expected a number > 0, found -1``.

Nothing here knows about the project's sections; the names are passed in by :mod:`jvla.config`
(which re-exports :class:`ConfigError`, :func:`fld` and :func:`to_dict`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any, Literal


class ConfigError(ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


def fld(default: Any = dataclasses.MISSING, *, ge=None, gt=None, le=None, lt=None):
    """A dataclass field with an optional numeric range checked at load time.

    Without ``default`` the field is required: a missing key is a :class:`ConfigError`. A default
    is only for a key the params file may legitimately leave out (document it as optional).
    """
    meta = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    return field(default=default, metadata=meta)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields_of(tp: Any) -> dict[str, Any] | None:
    """Field name -> type of a dataclass type (``Optional`` unwrapped); None for anything else."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = inner[0] if len(inner) == 1 else Any
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        return {f.name: hints[f.name] for f in dataclasses.fields(tp)}
    return None


def merge(base: dict, over: Any, schema: Any, path: str, source: str) -> None:
    """Deep-merge the mapping ``over`` into ``base`` in place.

    Keys are checked against ``schema`` (the dataclass type of the node), not against what
    ``base`` happens to list: a field the base section leaves out may be set, a key that is no
    field is an error. Inside a free-form mapping (``dict[str, ...]`` such as
    ``evaluate.settings``) the keys are data, and a key absent from ``base`` is an error (a typo
    in a name). Values are checked later by :func:`build`.
    """
    if not isinstance(over, Mapping):
        raise ConfigError(f"{source}: {path}: expected a mapping, found {_show(over)}")
    fields = _fields_of(schema)
    for k, v in over.items():
        key = _join(path, k)
        if fields is not None:
            if k not in fields:
                raise ConfigError(f"{source}: {key}: unknown key; expected one of {list(fields)}")
            sub = fields[k]
        else:
            if k not in base:
                raise ConfigError(f"{source}: {key}: unknown key (not in the base parameters)")
            args = typing.get_args(schema)
            sub = args[1] if typing.get_origin(schema) is dict and len(args) == 2 else Any
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            merge(base[k], v, sub, key, source)
        else:
            base[k] = copy.deepcopy(v)


def expand_shared(
    layers: Sequence[tuple[str, Mapping]],
    shared: str,
    sections: Sequence[str],
    schema: type,
    source: str,
) -> dict[str, dict]:
    """Resolve a shared block into full sections, layer by layer.

    Each layer is ``(path, mapping)``: the base file (``path`` ``""``), then a profile
    (``profiles.<name>``), then explicit overrides. A layer may hold ``shared`` and any of
    ``sections``, each a flat mapping of ``schema`` fields. Layers apply in order, and within one
    layer the shared block applies to every section before the section's own keys. So a section
    lists only what differs from the shared block, and a later layer's shared value beats an
    earlier layer's per-section value (a profile's ``training.max_steps`` reaches every stage).

    Returns ``{shared: ..., section: ...}``: plain mappings, to be checked by :func:`build`.
    """
    names = [f.name for f in dataclasses.fields(schema)]
    out: dict[str, dict] = {k: {} for k in (shared, *sections)}
    for path, layer in layers:
        blocks = {}
        for k in (shared, *sections):
            block = layer.get(k)
            if block is None:
                continue
            if not isinstance(block, Mapping):
                raise ConfigError(f"{source}: {_join(path, k)}: expected a mapping, found {_show(block)}")
            for key in block:
                if key not in names:
                    raise ConfigError(
                        f"{source}: {_join(path, k)}.{key}: unknown key; expected one of {names}"
                    )
            blocks[k] = copy.deepcopy(dict(block))
        for k in (shared, *sections):
            out[k].update(blocks.get(shared, {}))
            if k != shared:
                out[k].update(blocks.get(k, {}))
    return out


def build(cls: type, data: Any, path: str, source: str):
    """The dataclass ``cls`` from the mapping ``data`` at key path ``path`` (``""`` = top level)."""
    where = path or "<top level>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where}: expected a mapping, found {_show(data)}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            raise ConfigError(f"{source}: {_join(path, k)}: unknown key; expected one of {names}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = _join(path, f.name)
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name], key, source, f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: {key}: missing (required)")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _coerce(tp: Any, value: Any, key: str, source: str, meta: Mapping = types.MappingProxyType({})):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key, source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, source, meta)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key}: expected one of {list(args)}, found {_show(value)}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key}: expected true or false, found {_show(value)}")
        return value
    if tp in (int, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if tp is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise ConfigError(
                f"{source}: {key}: expected {'an integer' if tp is int else 'a number'}{_range(meta)}, found {_show(value)}"
            )
        value = tp(value)
        _check_range(value, key, source, meta, tp)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key}: expected a string, found {_show(value)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {key}: expected a list, found {_show(value)}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{key}[{i}]", source, meta) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key}: expected a mapping, found {_show(value)}")
        vt = args[1] if args else Any
        return {str(k): _coerce(vt, v, f"{key}.{k}", source) for k, v in value.items()}
    raise TypeError(f"config type {tp!r} at {key} is not supported")  # a bug in the schema


def _check_range(value, key, source, meta, tp):
    bad = (
        ("ge" in meta and value < meta["ge"]) or ("gt" in meta and value <= meta["gt"])
        or ("le" in meta and value > meta["le"]) or ("lt" in meta and value >= meta["lt"])
    )  # fmt: skip
    if bad:
        kind = "an integer" if tp is int else "a number"
        raise ConfigError(f"{source}: {key}: expected {kind}{_range(meta)}, found {value!r}")


def _range(meta: Mapping) -> str:
    ops = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = [f"{ops[k]} {meta[k]}" for k in ("ge", "gt", "le", "lt") if k in meta]
    return (" " + " and ".join(parts)) if parts else ""


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def to_dict(obj: Any) -> Any:
    """A frozen config (or any part of it) as plain YAML/JSON-ready data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
