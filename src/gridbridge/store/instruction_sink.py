"""The store-backed ``InstructionSink``: one interval's DER instructions written to the ``instructions`` table in bulk.

``StoreInstructionSink.write`` takes the columns of ``InstructionArrays`` and writes, in one transaction:

1. one instruction per DER: from the TSO for a DER it dispatches directly (no parent), otherwise from the DSO or
   the aggregator, carrying ``parent_id``;
2. one parent instruction per (resource, product) that a DSO or an aggregator received from the TSO, with the sum
   of its children as ``p_kw``.

Every ``parent_id`` names a parent written in the same transaction: the table has no foreign key on it (migration
0006), so this writer is what keeps the rule. Rows go in through ``COPY ... FROM STDIN`` (binary) on PostgreSQL
and the driver's ``executemany`` on SQLite: never one ORM object per row. On PostgreSQL the COPY stream is built
with numpy, many rows at a time: rows whose columns have the same widths are laid out as one byte matrix, columns
by slices. Column values that are the same for the whole batch (kind, market, interval, times) pass through the
columns' own bind processors once, so the rows are exactly what the repositories read back; ``p_kw`` is rounded
to the micro-kW (``numpy.round(p_kw, 6)``).

Ids are ``<batch>-<n>`` for DER rows, ``n`` their position in the write with at least 8 digits, and
``<batch>-p<resource>-<product>`` for parents, ``<batch>`` a fresh random prefix per write; every id of a write
has the same width and the rows go in in id order, so the primary key's B-tree is appended to rather than
split all over. ``delete_batch`` removes a batch again.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete

from gridbridge.domain.market import InstructionKind, InstructionProduct, InstructionStatus, ResourceKind
from gridbridge.domain.offers import MARKET_INTERVAL, Market
from gridbridge.engines.clearing.types import FloatArray, IntArray
from gridbridge.services.instruction_sink import (
    ISSUER_AGGREGATOR,
    ISSUER_DSO,
    ISSUER_TSO,
    InstructionArrays,
)
from gridbridge.store.market_tables import instructions

CONSTANT = ("kind", "market", "interval_start", "interval_end", "status", "issued_at", "deadline_at")
"""Columns with one value for the whole batch."""
VARYING = (
    "id",
    "product",
    "p_kw",
    "issuer_id",
    "recipient_id",
    "resource_kind",
    "resource_id",
    "der_id",
    "parent_id",
    "tso_visible",
)
"""Columns with one value per row (the order of the row tuples)."""
COLUMNS = VARYING + CONSTANT
COPY_TYPES = dict.fromkeys(COLUMNS, "varchar") | {
    "p_kw": "float8",
    "tso_visible": "bool",
    "interval_start": "timestamp",
    "interval_end": "timestamp",
    "issued_at": "timestamp",
    "deadline_at": "timestamp",
}
"""PostgreSQL types of the binary COPY (timestamps are naive UTC, as ``UtcDateTime`` stores them)."""
ID_DIGITS = 8
"""Digits of a DER row's number in its id, at least."""
CHUNK_ROWS = 32_768
"""Rows per block of the COPY stream (bounds the memory of one block to a few MB)."""
_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + bytes(8)
_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1)

Field = bytes | np.ndarray | None
"""One column of a block of rows in the binary COPY: a constant's bytes, a ``(rows, width)`` uint8 matrix (the same
width on every row), or ``None`` (NULL)."""


def _literal(value: object) -> str:
    """An SQL literal of a bind-processed constant (text is quoted, quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no literal for {value!r}")


def binary_value(value: Any, pg_type: str) -> bytes | None:
    """``value`` (bind-processed) as PostgreSQL's binary COPY sends it for ``pg_type``; ``None`` for NULL."""
    if value is None:
        return None
    if pg_type == "varchar":
        return str(value).encode()
    if pg_type == "float8":
        return struct.pack(">d", value)
    if pg_type == "bool":
        return b"\x01" if value else b"\x00"
    if pg_type == "timestamp":
        delta: timedelta = value - _PG_EPOCH
        return struct.pack(">q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    raise TypeError(f"no binary form for {pg_type}")


def binary_rows(rows: int, fields: Sequence[Field]) -> bytes:
    """``rows`` tuples of the binary COPY format, one per row, the columns given by ``fields`` (see ``Field``).

    One template row holds the field count, every length and every constant; it is copied to all rows at once,
    then each per-row column is written into its slice."""
    template = bytearray(struct.pack(">h", len(fields)))
    slices: list[tuple[int, np.ndarray]] = []
    for field in fields:
        if field is None:
            template += _NULL
        elif isinstance(field, bytes):
            template += struct.pack(">i", len(field)) + field
        else:
            template += struct.pack(">i", field.shape[1])
            slices.append((len(template), field))
            template += bytes(field.shape[1])
    out = np.empty((rows, len(template)), dtype=np.uint8)
    out[:] = np.frombuffer(template, dtype=np.uint8)
    for at, matrix in slices:
        out[:, at : at + matrix.shape[1]] = matrix
    return out.tobytes()


def _text_matrix(values: Sequence[str]) -> tuple[np.ndarray, IntArray]:
    """UTF-8 bytes of ``values`` as a zero-padded ``(n, widest)`` uint8 matrix, and each value's length in bytes."""
    try:
        encoded = np.array(values, dtype=np.bytes_)  # ASCII (the usual case): numpy encodes in C
    except UnicodeEncodeError:
        encoded = np.array([value.encode() for value in values], dtype=np.bytes_)
    if encoded.size == 0:
        encoded = np.zeros(0, dtype="S1")
    width = max(encoded.dtype.itemsize, 1)
    matrix = np.frombuffer(encoded.tobytes(), dtype=np.uint8).reshape(len(values), width)
    lengths = np.asarray(np.strings.str_len(encoded), dtype=np.int64)
    return matrix, lengths


def _numbered(prefix: str, numbers: IntArray, digits: int) -> np.ndarray:
    """``prefix`` followed by each number zero-padded to ``digits``, as a ``(n, width)`` uint8 matrix."""
    head = prefix.encode()
    out = np.empty((numbers.size, len(head) + digits), dtype=np.uint8)
    out[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
    powers = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    out[:, len(head) :] = (numbers[:, None] // powers[None, :]) % 10 + ord("0")
    return out


def _groups(key: IntArray) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each run of equal keys in ``key`` (sorted), cut to at most ``CHUNK_ROWS``."""
    if key.size == 0:
        return
    cuts = np.flatnonzero(np.diff(key)) + 1
    for start, stop in zip(np.r_[0, cuts].tolist(), np.r_[cuts, key.size].tolist(), strict=True):
        for lo in range(start, stop, CHUNK_ROWS):
            yield lo, min(lo + CHUNK_ROWS, stop)


@dataclass(frozen=True, eq=False)
class _Layout:
    """One write's rows in write order: DER rows (grouped by issuer, product and name width, then by parent),
    then the parents."""

    batch: str
    digits: int
    der_order: IntArray
    """Row of ``InstructionArrays`` at each DER position of the write."""
    der_key: IntArray
    """Per DER position: issuer, product and name width, one number (sorted)."""
    der_names_text: list[str]
    """Every DER's name, in the order of ``InstructionArrays``."""
    der_names: np.ndarray
    """UTF-8 names per DER position, a zero-padded uint8 matrix."""
    der_slot: IntArray
    """Per DER position: its parent's index in the parent arrays, -1 for none."""
    parent_ids: list[str]
    parent_id_matrix: np.ndarray
    parent_key: IntArray
    """Per parent: resource * 2 + product."""
    parent_issuer: IntArray
    parent_p_kw: FloatArray


class StoreInstructionSink:
    """Writes ``InstructionArrays`` through the store (see the module docstring).

    ``der_ids`` names DER ``i`` (default ``der-<i>``); ``party_ids`` names the participants per issuer code
    (TSO, DSO, aggregator) and ``der_party`` the recipient of a DER's own instruction.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        market: Market = Market.REAL_TIME,
        issued_at: datetime,
        response_window: timedelta = timedelta(minutes=2),
        der_ids: Callable[[Sequence[int]], list[str]] | None = None,
        party_ids: tuple[str, str, str] = ("tso", "dso", "aggregator"),
        der_party: str = "der-owner",
    ) -> None:
        self.engine = engine
        self.market = market
        self.issued_at = issued_at
        self.deadline_at = issued_at + response_window
        self.der_ids = der_ids or (lambda index: [f"der-{i}" for i in index])
        self.party_ids = party_ids
        self.der_party = der_party
        self.batches: list[str] = []

    def _constants(self, interval_start: datetime) -> dict[str, Any]:
        """The batch's constant columns, through each column's bind processor."""
        kind = InstructionKind.DISPATCH if self.market is Market.REAL_TIME else InstructionKind.SCHEDULE
        values: dict[str, Any] = {
            "kind": kind,
            "market": self.market,
            "interval_start": interval_start,
            "interval_end": interval_start + MARKET_INTERVAL[self.market],
            "status": InstructionStatus.ISSUED,
            "issued_at": self.issued_at,
            "deadline_at": self.deadline_at,
            "resource_der": ResourceKind.DER,
            "resource_aggregation": ResourceKind.AGGREGATION,
            "resource_virtual": ResourceKind.DSO_VIRTUAL,
            "energy": InstructionProduct.ENERGY,
            "reserve": InstructionProduct.OPERATING_RESERVE,
        }
        column_of = {
            "resource_der": "resource_kind",
            "resource_aggregation": "resource_kind",
            "resource_virtual": "resource_kind",
            "energy": "product",
            "reserve": "product",
        }
        dialect = self.engine.dialect
        out = {}
        for key, value in values.items():
            column_type = instructions.c[column_of.get(key, key)].type
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            out[key] = processor(value) if processor else value
        return out

    def _layout(self, arrays: InstructionArrays, batch: str) -> _Layout:
        issuer = arrays.issuer.astype(np.int64)
        product = arrays.product.astype(np.int64)
        delegated = issuer != ISSUER_TSO
        # parents: one per (resource, product) handed to a DSO or an aggregator
        key = arrays.parent_index.astype(np.int64) * 2 + product
        parent_key, inverse = np.unique(key[delegated], return_inverse=True)
        parent_p = np.bincount(inverse, weights=arrays.p_kw[delegated], minlength=parent_key.size).astype(np.float64)
        parent_issuer = np.zeros(parent_key.size, dtype=np.int64)
        parent_issuer[inverse] = issuer[delegated]
        width = max(7, len(str(int(parent_key.max()) // 2)) if parent_key.size else 0)
        parent_ids = [f"{batch}-p{k // 2:0{width}d}-{k % 2}" for k in parent_key.tolist()]
        slot = np.full(arrays.rows, -1, dtype=np.int64)
        slot[delegated] = inverse
        names_text = self.der_ids(arrays.der_index.tolist())
        names, name_len = _text_matrix(names_text)
        # rows with the same issuer, product and name width form one block of the COPY stream; within it,
        # grouped by parent so that the parent index is appended to in runs
        der_key = (issuer * 2 + product) * 1024 + name_len
        order = np.lexsort((np.arange(arrays.rows), slot, der_key))
        return _Layout(
            batch=batch,
            digits=max(ID_DIGITS, len(str(arrays.rows))),
            der_order=order,
            der_key=der_key[order],
            der_names_text=names_text,
            der_names=names[order],
            der_slot=slot[order],
            parent_ids=parent_ids,
            parent_id_matrix=_text_matrix(parent_ids)[0],
            parent_key=parent_key,
            parent_issuer=parent_issuer,
            parent_p_kw=parent_p,
        )

    def rows(self, arrays: InstructionArrays, batch: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """``(parents, ders)`` rows of the ``VARYING`` columns for one batch, DER rows in write order."""
        layout = self._layout(arrays, batch)
        constants = self._constants(arrays.interval_start)
        return self._parent_rows(layout, constants), self._der_rows(layout, arrays, constants)

    def _parent_rows(self, layout: _Layout, c: dict[str, Any]) -> list[tuple[Any, ...]]:
        tso, dso, aggregator = self.party_ids
        return [
            (
                pid,
                c["reserve"] if k % 2 else c["energy"],
                p,
                tso,
                dso if who == ISSUER_DSO else aggregator,
                c["resource_virtual"] if who == ISSUER_DSO else c["resource_aggregation"],
                f"{layout.batch}-resource-{k // 2}",
                None,
                None,
                True,
            )
            for pid, k, p, who in zip(
                layout.parent_ids,
                layout.parent_key.tolist(),
                np.round(layout.parent_p_kw, 6).tolist(),
                layout.parent_issuer.tolist(),
                strict=True,
            )
        ]

    def _der_rows(self, layout: _Layout, arrays: InstructionArrays, c: dict[str, Any]) -> list[tuple[Any, ...]]:
        order = layout.der_order
        n = order.size
        issuer = arrays.issuer[order].astype(np.int64)
        names = np.array(layout.der_names_text, dtype=object)[order].tolist()
        return list(
            zip(
                [f"{layout.batch}-{i:0{layout.digits}d}" for i in range(n)],
                np.array([c["energy"], c["reserve"]], dtype=object)[arrays.product[order]].tolist(),
                np.round(arrays.p_kw[order], 6).tolist(),
                np.array(self.party_ids, dtype=object)[issuer].tolist(),
                [self.der_party] * n,
                [c["resource_der"]] * n,
                names,
                names,
                np.array([*layout.parent_ids, None], dtype=object)[layout.der_slot].tolist(),
                (issuer == ISSUER_TSO).tolist(),
                strict=True,
            )
        )

    def copy_blocks(self, arrays: InstructionArrays, batch: str) -> Iterator[bytes]:
        """The binary COPY stream of one batch (``COLUMNS``), in blocks: signature, DER rows, parents, trailer."""
        return self._copy_blocks(self._layout(arrays, batch), arrays)

    def _copy_blocks(self, layout: _Layout, arrays: InstructionArrays) -> Iterator[bytes]:
        c = self._constants(arrays.interval_start)
        fixed: list[Field] = [binary_value(c[name], COPY_TYPES[name]) for name in CONSTANT]
        tso, dso, aggregator = (name.encode() for name in self.party_ids)
        issuer_name = {ISSUER_TSO: tso, ISSUER_DSO: dso, ISSUER_AGGREGATOR: aggregator}
        product_name = [str(c["energy"]).encode(), str(c["reserve"]).encode()]
        p_kw = np.round(arrays.p_kw[layout.der_order], 6).astype(">f8").view(np.uint8).reshape(-1, 8)
        yield _SIGNATURE
        for lo, hi in _groups(layout.der_key):
            combo, width = divmod(int(layout.der_key[lo]), 1024)
            who, product = divmod(combo, 2)
            name = layout.der_names[lo:hi, :width]
            slots = layout.der_slot[lo:hi]
            parent = None if who == ISSUER_TSO else layout.parent_id_matrix[slots]
            varying: list[Field] = [
                _numbered(f"{layout.batch}-", np.arange(lo, hi, dtype=np.int64), layout.digits),
                product_name[product],
                p_kw[lo:hi],
                issuer_name[who],
                self.der_party.encode(),
                str(c["resource_der"]).encode(),
                name,
                name,
                parent,
                b"\x01" if who == ISSUER_TSO else b"\x00",
            ]
            yield binary_rows(hi - lo, varying + fixed)
        for row in self._parent_rows(layout, c):
            values: list[Field] = [binary_value(v, COPY_TYPES[name]) for v, name in zip(row, VARYING, strict=True)]
            yield binary_rows(1, values + fixed)
        yield _TRAILER

    def write(self, instructions_: InstructionArrays) -> int:
        """Persist every instruction (DER rows, then their parents) in one transaction; return the number of DER
        rows."""
        batch = uuid.uuid4().hex[:12]
        layout = self._layout(instructions_, batch)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                raw: Any = conn.connection.driver_connection
                sql = f"COPY instructions ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                with raw.cursor() as cursor, cursor.copy(sql) as copy:
                    for block in self._copy_blocks(layout, instructions_):
                        copy.write(block)
            else:
                constants = self._constants(instructions_.interval_start)
                parents = self._parent_rows(layout, constants)
                ders = self._der_rows(layout, instructions_, constants)
                values = ", ".join(["?"] * len(VARYING) + [_literal(constants[name]) for name in CONSTANT])
                sql = f"INSERT INTO instructions ({', '.join(COLUMNS)}) VALUES ({values})"
                for rows in (ders, parents):
                    if rows:
                        conn.exec_driver_sql(sql, rows)
        self.batches.append(batch)
        return instructions_.rows

    def delete_batch(self, batch: str) -> None:
        """Remove one written batch."""
        with self.engine.begin() as conn:
            conn.execute(delete(instructions).where(instructions.c.id.like(f"{batch}-%")))
