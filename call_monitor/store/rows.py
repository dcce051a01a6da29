"""Rows from the records' mappings (:mod:`call_monitor.records`), and records back from rows.

A row is a record's mapping restricted to its table's columns: the columns are read from the
table, the names differing from the fields' are listed (``renamed``), and so are the columns
that come from elsewhere than the record (``context``: the parent's key, a position) and the
record's names that have no column, each with the reason (``not_stored``). The tests check
the three lists against the tables and the dataclasses, so a field without a column fails.

:meth:`TableMap.row` restricts a mapping already built; the writers, which turn every call
and every obligation change into rows, use :meth:`TableMap.compile` instead: the same row
from the records themselves, by a function generated from the same lists and shapes.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Table

from call_monitor.records import Convert, Shape, compile_mapping, same, tuple_getter

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")
Row = dict[str, Any]


class TableMap:
    """How one table's rows are filled from a record's mapping (see the module docstring):
    ``context``, the columns given with the mapping; ``renamed``, a name to its column where
    they differ; ``not_stored``, a name without a column to the reason."""

    def __init__(
        self,
        table: Table,
        *,
        context: tuple[str, ...] = (),
        renamed: Mapping[str, str] = MappingProxyType({}),
        not_stored: Mapping[str, str] = MappingProxyType({}),
    ) -> None:
        self.table = table
        self.context = context
        self.renamed = renamed
        self.not_stored = not_stored
        self.columns = tuple(column.name for column in table.columns)
        by_column = {column: name for name, column in renamed.items()}
        # Each column to the name it has in the mapping.
        self._names = {column: by_column.get(column, column) for column in self.columns}
        self._stored = tuple(column for column in self.columns if column not in context)
        self._get = tuple_getter(operator.itemgetter, [self._names[c] for c in self._stored])

    def gaps(self, names: Iterable[str]) -> list[str]:
        """What does not add up between a mapping's ``names`` and the table: a name with
        neither a column nor a reason, a column filled by nothing, a reason for a name that
        has a column or is not in the mapping. Empty when the mapping is complete."""
        names = set(names)
        stored = {self.renamed.get(name, name) for name in names - self.not_stored.keys()}
        columns, context, table = set(self.columns), set(self.context), self.table.name
        return sorted(
            [f"{table}: no column for {name!r}" for name in stored - columns]
            + [f"{table}: nothing fills {column!r}" for column in columns - stored - context]
            + [f"{table}: {column!r} is both context and stored" for column in stored & context]
            + [
                f"{table}: {name!r} not stored, yet not in the mapping or a column"
                for name in self.not_stored
                if name not in names or self.renamed.get(name, name) in columns
            ]
        )

    def row(self, values: Mapping[str, Any], **context: Any) -> Row:
        """The row of a record's mapping and its ``context`` columns; ``KeyError`` if a
        column is missing from both."""
        row = dict(zip(self._stored, self._get(values), strict=True))
        row.update(context)
        if len(row) != len(self.columns):  # a context column missing, or one too many
            raise TypeError(f"{self.table.name}: context {sorted(context)} != {self.context}")
        return row

    def compile(self, *shapes: Shape[Any], time: Convert = same) -> Callable[..., Row]:
        """``row(record, ..., **context)``, one record per shape, equal to
        ``self.row(merged(shapes, records, time), **context)`` (``records.merged``) but
        built directly: only the stored names are read (a derived value without a column is
        not computed). Generated once per shapes and ``time`` (``records.compile_mapping``);
        ``KeyError`` if no shape has a stored column's name."""
        stored = tuple((column, self._names[column]) for column in self._stored)
        return compile_mapping(
            shapes,
            stored + self.context,
            given=self.context,
            time=time,
            name=f"{self.table.name}_row",
        )

    def record(
        self, shape: Shape[R], row: Mapping[str, Any], time: Convert = same, **given: Any
    ) -> R:
        """The record of a row read back: its fields from their columns (times through
        ``time``), the fields without a column (``not_stored``) ``given``."""
        expected = {name for name in self.not_stored if name in shape.init}
        if given.keys() != expected:
            raise TypeError(f"{self.table.name}: give {sorted(expected)}, not {sorted(given)}")
        values = {
            name: row[column] for column, name in self._names.items() if column not in self.context
        }
        return shape.build(values, time, **given)
