"""The store-backed ``InstructionSink``: one interval's DER instructions written to the ``instructions`` table in bulk.

``StoreInstructionSink.write`` takes the columns of ``InstructionArrays`` and writes, in one transaction:

1. one parent instruction per (resource, product) that a DSO or an aggregator received from the TSO, with the sum
   of its children as ``p_kw``;
2. one instruction per DER: from the TSO for a DER it dispatches directly (no parent), otherwise from the DSO or
   the aggregator, carrying ``parent_id``.

Rows go in through the table's compiled INSERT with the driver's ``executemany`` on SQLite and ``COPY ... FROM
STDIN`` (binary) on PostgreSQL: never one ORM object per row. Column values that are the same for the whole batch (kind,
market, interval, times) pass through the columns' own bind processors once, so the rows are exactly what the
repositories read back. Ids are ``<batch>-<n>`` (``<batch>-p<resource>-<product>`` for parents), ``<batch>`` a
fresh random prefix per write; ``delete_batch`` removes a batch again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete

from gridbridge.domain.market import InstructionKind, InstructionProduct, InstructionStatus, ResourceKind
from gridbridge.domain.offers import MARKET_INTERVAL, Market
from gridbridge.services.instruction_sink import (
    ENERGY,
    ISSUER_AGGREGATOR,
    ISSUER_DSO,
    ISSUER_TSO,
    RESERVE,
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


def _literal(value: object) -> str:
    """An SQL literal of a bind-processed constant (text is quoted, quotes doubled)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no literal for {value!r}")


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

    def rows(self, arrays: InstructionArrays, batch: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """``(parents, ders)`` rows of the ``VARYING`` columns for one batch."""
        c = self._constants(arrays.interval_start)
        tso, dso, aggregator = self.party_ids
        product_value = {ENERGY: c["energy"], RESERVE: c["reserve"]}
        issuer = arrays.issuer.astype(np.int64)
        delegated = issuer != ISSUER_TSO
        # parents: one per (resource, product) handed to a DSO or an aggregator
        key = arrays.parent_index * 2 + arrays.product.astype(np.int64)
        parent_keys, inverse = np.unique(key[delegated], return_inverse=True)
        parent_p = np.bincount(inverse, weights=arrays.p_kw[delegated], minlength=parent_keys.size)
        parent_issuer = np.zeros(parent_keys.size, dtype=np.int64)
        parent_issuer[inverse] = issuer[delegated]
        parent_id = [f"{batch}-p{k // 2:07d}-{k % 2}" for k in parent_keys.tolist()]
        parents = [
            (
                pid,
                product_value[k % 2],
                round(p, 6),
                tso,
                dso if who == ISSUER_DSO else aggregator,
                c["resource_virtual"] if who == ISSUER_DSO else c["resource_aggregation"],
                f"{batch}-resource-{k // 2}",
                None,
                None,
                True,
            )
            for pid, k, p, who in zip(
                parent_id, parent_keys.tolist(), parent_p.tolist(), parent_issuer.tolist(), strict=True
            )
        ]
        # DER rows go in grouped by parent (direct ones first), so the primary key and the parent index grow
        # in order: appends to the B-trees instead of inserts all over them
        slot = np.full(arrays.rows, -1, dtype=np.int64)
        slot[delegated] = inverse
        order = np.lexsort((np.arange(arrays.rows), slot))
        parent_of_row = [parent_id[k] if k >= 0 else None for k in slot[order].tolist()]
        issuer_name = {ISSUER_TSO: tso, ISSUER_DSO: dso, ISSUER_AGGREGATOR: aggregator}
        der_names = self.der_ids(arrays.der_index[order].tolist())
        ders = [
            (
                f"{batch}-{n:08d}",
                product_value[prod],
                round(p, 6),
                issuer_name[who],
                self.der_party,
                c["resource_der"],
                der,
                der,
                parent,
                who == ISSUER_TSO,
            )
            for n, (der, prod, p, who, parent) in enumerate(
                zip(
                    der_names,
                    arrays.product[order].tolist(),
                    arrays.p_kw[order].tolist(),
                    issuer[order].tolist(),
                    parent_of_row,
                    strict=True,
                )
            )
        ]
        return parents, ders

    def write(self, instructions_: InstructionArrays) -> int:
        """Persist every instruction (parents first) in one transaction; return the number of DER rows."""
        batch = uuid.uuid4().hex[:12]
        parents, ders = self.rows(instructions_, batch)
        constants = self._constants(instructions_.interval_start)
        fixed = tuple(constants[name] for name in CONSTANT)
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                raw: Any = conn.connection.driver_connection
                sql = f"COPY instructions ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
                with raw.cursor() as cursor, cursor.copy(sql) as copy:
                    copy.set_types([COPY_TYPES[name] for name in COLUMNS])
                    for rows in (parents, ders):
                        for row in rows:
                            copy.write_row(row + fixed)
            else:
                values = ", ".join(["?"] * len(VARYING) + [_literal(v) for v in fixed])
                sql = f"INSERT INTO instructions ({', '.join(COLUMNS)}) VALUES ({values})"
                for rows in (parents, ders):
                    if rows:
                        conn.exec_driver_sql(sql, rows)
        self.batches.append(batch)
        return len(ders)

    def delete_batch(self, batch: str) -> None:
        """Remove one written batch (children first, then parents)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(instructions).where(instructions.c.id.like(f"{batch}-%"), instructions.c.parent_id.isnot(None))
            )
            conn.execute(delete(instructions).where(instructions.c.id.like(f"{batch}-%")))
