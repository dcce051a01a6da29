"""One mapping per record type, read from the dataclass itself.

A record type's :class:`Shape` maps a record to a plain dict: its fields in the dataclass's
order (``dataclasses.fields``), then the derived values (properties) the shape names. Field
metadata says which fields hold times (:data:`TIME`); the caller says how a time is written
(epoch seconds become aware UTC datetimes for the store's rows, Seoul ISO strings for JSON).
The store's rows, the ``replay --json`` lines and the API's answers are all derived from that
one mapping: a row is the mapping restricted to its table's columns
(:mod:`call_monitor.store.rows`), a JSON object takes keys from it in a fixed order
(:func:`report`). A field added to a dataclass thus reaches each of them, and the store's
tests fail until it has a column or a stated reason to have none.

The hot paths (a call's rows, for every call the daemon stores) do not build the whole
mapping to keep part of it: :func:`compile_mapping` generates, from the same shapes and
keys, a function that builds the restricted dict directly (as ``dataclasses`` generates
``__init__``), reading only the names kept, so a derived value nobody keeps is not computed.

Generic and pure: no record type of its own, no I/O; it stands below calls/ and charter/.
"""

from __future__ import annotations

import dataclasses
import functools
import keyword
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

Convert = Callable[[Any], Any]
Key = str | tuple[str, str]
"""A JSON key: a name of the mapping, or ``(key, name)`` where the key is not the name."""

TIME: Final[Mapping[str, Any]] = MappingProxyType({"time": True})
"""The metadata of a field (or a derived value) holding a time, or ``None``."""

VALUE: Final[Mapping[str, Any]] = MappingProxyType({})
"""The metadata of a derived value that is not a time."""


def same(value: Any) -> Any:
    return value


def tuple_getter(
    getter: Callable[..., Callable[[Any], Any]], keys: Sequence[str]
) -> Callable[[Any], tuple[Any, ...]]:
    """``getter(*keys)`` (``operator.attrgetter`` or ``itemgetter``: every value in one call,
    the store maps every call with it), which gives a tuple also of one key or none."""
    if len(keys) == 1:
        get = getter(keys[0])
        return lambda source: (get(source),)
    if not keys:
        return lambda source: ()
    return getter(*keys)


class Shape(Generic[R]):
    """The plain mapping of one dataclass: ``names`` (its fields, then ``derived``) and
    ``times`` (those whose metadata is :data:`TIME`).

    ``derived``: the properties to include, by name, with their metadata (as a field's)."""

    def __init__(self, cls: type[R], derived: Mapping[str, Mapping[str, Any]] = VALUE) -> None:
        fields = dataclasses.fields(cls)
        field_names = {f.name for f in fields}
        for name in derived:
            if name in field_names or not isinstance(getattr(cls, name, None), property):
                raise TypeError(f"{cls.__name__}.{name} is not a derived value (a property)")
        metadata = {f.name: f.metadata for f in fields} | dict(derived)
        self.cls = cls
        self.names: tuple[str, ...] = tuple(metadata)
        self.times: frozenset[str] = frozenset(n for n, m in metadata.items() if m.get("time"))
        self.init: tuple[str, ...] = tuple(f.name for f in fields if f.init)
        self._get = tuple_getter(operator.attrgetter, self.names)

    def values(self, record: R, time: Convert = same) -> dict[str, Any]:
        """The record as a plain mapping: each name to its value, times through ``time``."""
        values = dict(zip(self.names, self._get(record), strict=True))
        if time is not same:
            for name in self.times:
                values[name] = time(values[name])
        return values

    def build(self, values: Mapping[str, Any], time: Convert = same, **given: Any) -> R:
        """The record back from a mapping of its fields (a row read back, say): each field
        from ``values`` (times through ``time``) unless ``given``; other names are ignored."""
        kwargs = {
            name: time(values[name]) if name in self.times else values[name]
            for name in self.init
            if name not in given
        }
        return self.cls(**kwargs, **given)


def merged(
    shapes: Sequence[Shape[Any]], records: Sequence[Any], time: Convert = same
) -> dict[str, Any]:
    """One mapping of several records (a call and its verdict): each record's values by its
    shape, in order; a name in two of them has the later one's value."""
    values: dict[str, Any] = {}
    for shape, record in zip(shapes, records, strict=True):
        values |= shape.values(record, time)
    return values


def report(values: Mapping[str, Any], order: Sequence[Key]) -> dict[str, Any]:
    """A JSON object of ``values``: the keys in ``order`` (see :data:`Key`)."""
    return {key: values[name] for key, name in key_pairs(order)}


def key_pairs(order: Iterable[Key]) -> tuple[tuple[str, str], ...]:
    """``order`` (see :data:`Key`) as ``(key, name)`` pairs."""
    return tuple((key, key) if isinstance(key, str) else key for key in order)


@functools.cache
def compile_mapping(
    shapes: tuple[Shape[Any], ...],
    order: tuple[Key, ...],
    *,
    given: tuple[str, ...] = (),
    time: Convert = same,
    name: str = "mapping",
) -> Callable[..., dict[str, Any]]:
    """A function ``(record, ..., **given) -> dict``, one record per shape, that returns
    ``report(merged(shapes, records, time) | given, order)``, without building the mapping:
    it reads only the names ``order`` keeps (a name in ``given`` from the keyword).

    Its source is generated once from the shapes' names and times (cached: one function per
    arguments); ``KeyError`` if a name is in neither ``given`` nor a shape."""
    for identifier in (name, *given):
        if not identifier.isidentifier() or keyword.iskeyword(identifier):
            raise ValueError(f"{name}: {identifier!r} is not a name the code can use")
        if identifier in given and identifier.startswith("_"):
            raise ValueError(f"{name}: {identifier!r} starts with _, as the code's own names")
    lines = [
        f"    {key!r}: {_expression(value, shapes, given, time is not same)},"
        for key, value in key_pairs(order)
    ]
    records = [f"_record{i}" for i in range(len(shapes))]
    parameters = [*records, "/"] if records else []
    parameters += ["*", *given] if given else []
    source = "\n".join([f"def {name}({', '.join(parameters)}):", "  return {", *lines, "  }"])
    namespace: dict[str, Any] = {}
    # The text holds only names checked above (identifiers) and reprs of the keys.
    exec(source, {"_time": time}, namespace)
    function: Callable[..., dict[str, Any]] = namespace[name]
    function.__doc__ = source  # what it does, for a reader in a debugger
    return function


def _expression(
    name: str, shapes: Sequence[Shape[Any]], given: Sequence[str], convert: bool
) -> str:
    """The generated code's expression of ``name``: its keyword if given, else the last
    shape holding it (as :func:`merged` takes it), through ``_time`` if a time there."""
    if name in given:
        return name
    for index in reversed(range(len(shapes))):
        shape = shapes[index]
        if name in shape.names:
            if not name.isidentifier():
                raise ValueError(f"{shape.cls.__name__}: {name!r} is not an attribute name")
            value = f"_record{index}.{name}"
            return f"_time({value})" if name in shape.times and convert else value
    raise KeyError(name)
