"""The bulk instruction port: one interval's DER instructions as columns, and where they are written.

The coordination cycle produces instructions for up to millions of DERs at once; they cross this port as
arrays, never as one object per row. ``gridbridge.store.instruction_sink.StoreInstructionSink`` writes them
through the store (bulk inserts in one transaction, on SQLite or PostgreSQL); the benchmark has its own
plain-SQLite sink to compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gridbridge.engines.clearing.types import FloatArray, Int8Array, IntArray

ISSUER_TSO, ISSUER_DSO, ISSUER_AGGREGATOR = 0, 1, 2
"""Values of ``InstructionArrays.issuer``."""
ENERGY, RESERVE = 0, 1
"""Values of ``InstructionArrays.product``."""


@dataclass(frozen=True, eq=False)
class InstructionArrays:
    """One interval's DER instructions as columns: who, from which parent instruction, what, how much."""

    interval_start: datetime
    der_index: IntArray
    issuer: Int8Array
    """0 TSO (direct dispatch), 1 DSO (its virtual resource), 2 aggregator (its aggregation)."""
    parent_index: IntArray
    """The parent instruction: the index of the cleared resource whose instruction this one splits."""
    product: Int8Array
    """0 energy, 1 operating reserve."""
    p_kw: FloatArray

    @property
    def rows(self) -> int:
        """Number of instructions."""
        return int(self.der_index.size)


class InstructionSink(Protocol):
    """Where instructions go once issued."""

    def write(self, instructions: InstructionArrays) -> int:
        """Persist all instructions in one transaction; return the number of DER instruction rows written."""
        ...
