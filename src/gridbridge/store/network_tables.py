"""Tables of the consolidated network model: one ``networks`` row per T-D interface, one table per element.

Every element table has an integer primary key, ``network_id`` (ON DELETE CASCADE), ``position`` (the
element's place in the model, so a loaded model keeps its order) and ``name``, unique per network.
References between elements are foreign keys to the referenced row's ``id`` (also ON DELETE CASCADE), each
indexed so that deleting a network with 10,000 buses stays fast on PostgreSQL.

``connection_points`` also carries ``tdi_id`` and ``feeder_id``: DERs reference a connection point by its
integer id, and the platform asks which T-D interface and feeder a point is in without loading the model.
A connection point's id survives re-importing the network (``save_network(..., replace=True)``) as long as
its name (its bus name) is still there.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import gridbridge.store.tables  # noqa: F401  (td_interfaces, the target of networks.tdi_id)
from gridbridge.domain.network import BranchKind, Phase, SwitchElement
from gridbridge.store.base import Base
from gridbridge.store.types import UtcDateTime, enum_column

NAME = String(200)
TDI_ID = String(36)


def _network_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("networks.id", ondelete="CASCADE"), nullable=False)


def _bus_fk(nullable: bool = False) -> Mapped[int]:
    return mapped_column(ForeignKey("network_buses.id", ondelete="CASCADE"), nullable=nullable, index=True)


class NetworkRow(Base):
    """The network model of one T-D interface (at most one per interface)."""

    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tdi_id: Mapped[str] = mapped_column(TDI_ID, ForeignKey("td_interfaces.id"), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    source: Mapped[str] = mapped_column(String(1000), nullable=False)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    f_hz: Mapped[float] = mapped_column(Float, nullable=False)
    sn_mva: Mapped[float] = mapped_column(Float, nullable=False)


class BusRow(Base):
    """A bus of a stored network."""

    __tablename__ = "network_buses"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    vn_kv: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)
    bus_type: Mapped[str] = mapped_column(String(32), nullable=False)
    zone: Mapped[str | None] = mapped_column(NAME)
    subnet: Mapped[str | None] = mapped_column(NAME)
    min_vm_pu: Mapped[float | None] = mapped_column(Float)
    max_vm_pu: Mapped[float | None] = mapped_column(Float)
    geo: Mapped[str | None] = mapped_column(Text)


class LineRow(Base):
    """A line or cable of a stored network."""

    __tablename__ = "network_lines"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    from_bus_id: Mapped[int] = _bus_fk()
    to_bus_id: Mapped[int] = _bus_fk()
    length_km: Mapped[float] = mapped_column(Float, nullable=False)
    r_ohm_per_km: Mapped[float] = mapped_column(Float, nullable=False)
    x_ohm_per_km: Mapped[float] = mapped_column(Float, nullable=False)
    c_nf_per_km: Mapped[float] = mapped_column(Float, nullable=False)
    max_i_ka: Mapped[float] = mapped_column(Float, nullable=False)
    g_us_per_km: Mapped[float] = mapped_column(Float, nullable=False)
    parallel: Mapped[int] = mapped_column(Integer, nullable=False)
    df: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)
    max_loading_percent: Mapped[float | None] = mapped_column(Float)
    std_type: Mapped[str | None] = mapped_column(NAME)
    subnet: Mapped[str | None] = mapped_column(NAME)


class TransformerRow(Base):
    """A two-winding transformer of a stored network."""

    __tablename__ = "network_transformers"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    hv_bus_id: Mapped[int] = _bus_fk()
    lv_bus_id: Mapped[int] = _bus_fk()
    sn_mva: Mapped[float] = mapped_column(Float, nullable=False)
    vn_hv_kv: Mapped[float] = mapped_column(Float, nullable=False)
    vn_lv_kv: Mapped[float] = mapped_column(Float, nullable=False)
    vk_percent: Mapped[float] = mapped_column(Float, nullable=False)
    vkr_percent: Mapped[float] = mapped_column(Float, nullable=False)
    pfe_kw: Mapped[float] = mapped_column(Float, nullable=False)
    i0_percent: Mapped[float] = mapped_column(Float, nullable=False)
    shift_degree: Mapped[float] = mapped_column(Float, nullable=False)
    tap_side: Mapped[str | None] = mapped_column(String(8))
    tap_neutral: Mapped[float | None] = mapped_column(Float)
    tap_min: Mapped[float | None] = mapped_column(Float)
    tap_max: Mapped[float | None] = mapped_column(Float)
    tap_step_percent: Mapped[float | None] = mapped_column(Float)
    tap_step_degree: Mapped[float | None] = mapped_column(Float)
    tap_pos: Mapped[float | None] = mapped_column(Float)
    tap_changer_type: Mapped[str | None] = mapped_column(String(32))
    parallel: Mapped[int] = mapped_column(Integer, nullable=False)
    df: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)
    max_loading_percent: Mapped[float | None] = mapped_column(Float)
    std_type: Mapped[str | None] = mapped_column(NAME)
    vector_group: Mapped[str | None] = mapped_column(String(32))
    subnet: Mapped[str | None] = mapped_column(NAME)


class SwitchRow(Base):
    """A switch of a stored network: at a bus, to another bus or at one end of a line or transformer.

    Exactly one of ``element_bus_id``, ``element_line_id``, ``element_transformer_id`` is set, the one
    that ``element_kind`` names.
    """

    __tablename__ = "network_switches"
    __table_args__ = (
        UniqueConstraint("network_id", "name"),
        CheckConstraint(
            "(element_kind = 'b' AND element_bus_id IS NOT NULL AND element_line_id IS NULL "
            "AND element_transformer_id IS NULL) OR "
            "(element_kind = 'l' AND element_line_id IS NOT NULL AND element_bus_id IS NULL "
            "AND element_transformer_id IS NULL) OR "
            "(element_kind = 't' AND element_transformer_id IS NOT NULL AND element_bus_id IS NULL "
            "AND element_line_id IS NULL)",
            name="one_element",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    bus_id: Mapped[int] = _bus_fk()
    element_kind: Mapped[SwitchElement] = mapped_column(enum_column(SwitchElement), nullable=False)
    element_bus_id: Mapped[int | None] = _bus_fk(nullable=True)
    element_line_id: Mapped[int | None] = mapped_column(ForeignKey("network_lines.id", ondelete="CASCADE"), index=True)
    element_transformer_id: Mapped[int | None] = mapped_column(
        ForeignKey("network_transformers.id", ondelete="CASCADE"), index=True
    )
    closed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    switch_type: Mapped[str | None] = mapped_column(String(32))
    z_ohm: Mapped[float] = mapped_column(Float, nullable=False)
    in_ka: Mapped[float | None] = mapped_column(Float)


class ExtGridRow(Base):
    """An external grid (slack at the T-D interface) of a stored network."""

    __tablename__ = "network_ext_grids"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    bus_id: Mapped[int] = _bus_fk()
    vm_pu: Mapped[float] = mapped_column(Float, nullable=False)
    va_degree: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)


class LoadRow(Base):
    """A forecast load of a stored network (consumer convention)."""

    __tablename__ = "network_loads"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    bus_id: Mapped[int] = _bus_fk()
    p_mw: Mapped[float] = mapped_column(Float, nullable=False)
    q_mvar: Mapped[float] = mapped_column(Float, nullable=False)
    sn_mva: Mapped[float | None] = mapped_column(Float)
    scaling: Mapped[float] = mapped_column(Float, nullable=False)
    const_z_p_percent: Mapped[float] = mapped_column(Float, nullable=False)
    const_i_p_percent: Mapped[float] = mapped_column(Float, nullable=False)
    const_z_q_percent: Mapped[float] = mapped_column(Float, nullable=False)
    const_i_q_percent: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)
    profile: Mapped[str | None] = mapped_column(NAME)
    subnet: Mapped[str | None] = mapped_column(NAME)


class SgenRow(Base):
    """A forecast static generator of a stored network (generator convention)."""

    __tablename__ = "network_sgens"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    bus_id: Mapped[int] = _bus_fk()
    p_mw: Mapped[float] = mapped_column(Float, nullable=False)
    q_mvar: Mapped[float] = mapped_column(Float, nullable=False)
    sn_mva: Mapped[float | None] = mapped_column(Float)
    scaling: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)
    kind: Mapped[str | None] = mapped_column(NAME)
    profile: Mapped[str | None] = mapped_column(NAME)
    subnet: Mapped[str | None] = mapped_column(NAME)


class StorageRow(Base):
    """A forecast storage unit of a stored network (consumer convention: positive p_mw charges)."""

    __tablename__ = "network_storages"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    bus_id: Mapped[int] = _bus_fk()
    p_mw: Mapped[float] = mapped_column(Float, nullable=False)
    q_mvar: Mapped[float] = mapped_column(Float, nullable=False)
    sn_mva: Mapped[float | None] = mapped_column(Float)
    max_e_mwh: Mapped[float | None] = mapped_column(Float)
    min_e_mwh: Mapped[float] = mapped_column(Float, nullable=False)
    soc_percent: Mapped[float | None] = mapped_column(Float)
    scaling: Mapped[float] = mapped_column(Float, nullable=False)
    in_service: Mapped[bool] = mapped_column(Boolean, nullable=False)
    kind: Mapped[str | None] = mapped_column(NAME)
    profile: Mapped[str | None] = mapped_column(NAME)
    subnet: Mapped[str | None] = mapped_column(NAME)


class FeederRow(Base):
    """A feeder of a stored network: the branch leaving the main busbar, and the busbar bus it leaves."""

    __tablename__ = "network_feeders"
    __table_args__ = (
        UniqueConstraint("network_id", "name"),
        CheckConstraint(
            "(branch_kind = 'line' AND branch_line_id IS NOT NULL AND branch_transformer_id IS NULL) OR "
            "(branch_kind = 'transformer' AND branch_transformer_id IS NOT NULL AND branch_line_id IS NULL)",
            name="one_branch",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    head_bus_id: Mapped[int] = _bus_fk()
    branch_kind: Mapped[BranchKind] = mapped_column(enum_column(BranchKind), nullable=False)
    branch_line_id: Mapped[int | None] = mapped_column(ForeignKey("network_lines.id", ondelete="CASCADE"), index=True)
    branch_transformer_id: Mapped[int | None] = mapped_column(
        ForeignKey("network_transformers.id", ondelete="CASCADE"), index=True
    )


class ConnectionPointRow(Base):
    """A connection point: a bus (and phase) below one feeder and one T-D interface."""

    __tablename__ = "connection_points"
    __table_args__ = (UniqueConstraint("network_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int] = _network_fk()
    tdi_id: Mapped[str] = mapped_column(TDI_ID, ForeignKey("td_interfaces.id"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(NAME, nullable=False)
    bus_id: Mapped[int] = _bus_fk()
    feeder_id: Mapped[int | None] = mapped_column(ForeignKey("network_feeders.id", ondelete="SET NULL"), index=True)
    phase: Mapped[Phase] = mapped_column(enum_column(Phase), nullable=False)


#: Element tables in the order rows are inserted (referenced tables first).
ELEMENT_TABLES: tuple[type[Base], ...] = (
    BusRow,
    LineRow,
    TransformerRow,
    SwitchRow,
    ExtGridRow,
    LoadRow,
    SgenRow,
    StorageRow,
    FeederRow,
    ConnectionPointRow,
)
