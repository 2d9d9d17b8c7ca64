"""Participant roles (white paper Table 3) and the market services DERs provide (Table 7)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """What a participant is on the platform. Every user belongs to one participant and acts in its role."""

    TSO = "tso"
    DSO = "dso"
    AGGREGATOR = "aggregator"
    DER_OWNER = "der_owner"
    OBSERVER = "observer"


class DsoKind(StrEnum):
    """How far an LDC has gone towards a DSO (white paper section 3.5): only meaningful for role ``dso``."""

    LDC = "ldc"
    MINIMAL_DSO = "minimal_dso"
    INDEPENDENT_DSO = "independent_dso"


class Service(StrEnum):
    """Services a DER or aggregation can register for and be dispatched for."""

    WHOLESALE_ENERGY = "wholesale_energy"
    OPERATING_RESERVE = "operating_reserve"
    DISTRIBUTION_SERVICES = "distribution_services"
