"""the products a DER is registered for in the wholesale market; curtailments per resource; unknown loads; split
shortfall notifications

``ders.market_products``: the wholesale products a DER offers on its own, its values sorted and joined by commas
(``energy``, ``operating_reserve``; empty: none). A DER is registered on commissioning for every product its
technology can provide (``domain.market.capable_products``), and its owner or representative may change that
(``PUT /ders/{id}/market-products``).

Existing DERs get, explicitly, what commissioning gives a new one, whatever their state:

* ``energy,operating_reserve`` for the dispatchable technologies: ``storage``, ``chp``, ``demand_response``,
  ``ev_charging``;
* ``energy`` for ``pv`` and ``other``.

Before this revision any DER in service could offer either product; from it a PV or ``other`` DER can no longer
offer operating reserve (its offers are refused with ``offers.not_enrolled``), and nothing else changes.

``clearing_curtailments``: the distribution check curtails aggregations and DSO virtual resources as well as
DERs, a multi-interface aggregation at each of its interfaces: ``resource_kind`` (existing rows: ``der``),
``der_id`` renamed ``resource_id``, and the key ``(run_id, resource_kind, resource_id, tdi_id)``. Downgrading
deletes the rows of other resources.

``clearing_interfaces.load_kw`` may be null: the TSO gave no load forecast for the interface (downgrading
stores 0 there, what the clearing assumed before).

``notifications.kind`` may be ``split_shortfall`` (downgrading deletes those notifications).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DISPATCHABLE = ("storage", "chp", "demand_response", "ev_charging")
RESOURCE_KINDS = ("der", "aggregation", "dso_virtual", "interface")
CURTAILMENT_PK = "pk_clearing_curtailments"


NOTIFICATION_KINDS = ("reverse_flow", "instruction_overdue", "conflict_resolved")
"""The notification kinds before this revision (0004 added ``conflict_resolved``)."""


def _notification_kind(*extra: str) -> sa.Enum:
    return sa.Enum(
        *NOTIFICATION_KINDS, *extra, name="notificationkind_enum", native_enum=False, create_constraint=True, length=32
    )


def _resource_kind() -> sa.Enum:
    return sa.Enum(*RESOURCE_KINDS, name="resourcekind_enum", native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    # added in place, never by copying the table: other tables' rows refer to the DERs
    op.add_column("ders", sa.Column("market_products", sa.String(length=128), nullable=False, server_default=""))
    ders = sa.table("ders", sa.column("technology", sa.String()), sa.column("market_products", sa.String()))
    op.execute(
        ders.update().where(ders.c.technology.in_(DISPATCHABLE)).values(market_products="energy,operating_reserve")
    )
    op.execute(ders.update().where(ders.c.technology.not_in(DISPATCHABLE)).values(market_products="energy"))
    _curtailments_per_resource()
    # an interface without the TSO's load forecast has no known load (its net flow is partial)
    with op.batch_alter_table("clearing_interfaces", schema=None) as batch_op:
        batch_op.alter_column("load_kw", existing_type=sa.Float(), nullable=True)
    # notifications may now report a split's shortfall
    with op.batch_alter_table("notifications", recreate="always") as batch:
        batch.alter_column(
            "kind", existing_type=_notification_kind(), type_=_notification_kind("split_shortfall"), nullable=False
        )


def _sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _curtailments_as(id_column: str, pk: set[str], *, kind: bool) -> sa.Table:
    """The clearing_curtailments table as it stands, with ``pk`` as its key columns: SQLite's copy of the table
    takes its key from this structure (a copy from reflection would keep the old key)."""
    ids = [sa.Column(c, sa.String(length=36), nullable=False, primary_key=c in pk) for c in ("run_id", id_column)]
    kinds: list[sa.Column[str]] = [
        sa.Column("resource_kind", _resource_kind(), nullable=False, primary_key="resource_kind" in pk)
    ]
    return sa.Table(
        "clearing_curtailments",
        sa.MetaData(naming_convention={"ck": "ck_%(table_name)s_%(constraint_name)s"}),
        *ids,
        *(kinds if kind else []),
        sa.Column("tdi_id", sa.String(length=36), nullable=False, primary_key="tdi_id" in pk),
        sa.Column("dispatched_kw", sa.Float(), nullable=False),
        sa.Column("allowed_kw", sa.Float(), nullable=False),
        sa.Column("curtailed_kw", sa.Float(), nullable=False),
        sa.Column("checked_by", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["clearing_runs.id"], name="fk_clearing_curtailments_run_id_clearing_runs"),
    )


def _curtailments_per_resource() -> None:
    """A curtailment names its resource (a DER, an aggregation, a DSO's virtual resource) and interface: a
    ``resource_kind`` column, ``der_id`` renamed ``resource_id``, one row per resource and interface."""
    with op.batch_alter_table("clearing_curtailments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resource_kind", _resource_kind(), nullable=False, server_default="der"))
        batch_op.alter_column(
            "der_id", new_column_name="resource_id", existing_type=sa.String(length=36), existing_nullable=False
        )
    key = ["run_id", "resource_kind", "resource_id", "tdi_id"]
    copy = _curtailments_as("resource_id", set(key), kind=True) if _sqlite() else None
    with op.batch_alter_table("clearing_curtailments", copy_from=copy) as batch_op:
        batch_op.alter_column("resource_kind", existing_type=_resource_kind(), server_default=None)
        if not _sqlite():
            batch_op.drop_constraint(CURTAILMENT_PK, type_="primary")
            batch_op.create_primary_key(CURTAILMENT_PK, key)


def _curtailments_per_der() -> None:
    """Back to one row per DER (other rows are deleted)."""
    op.execute("DELETE FROM clearing_curtailments WHERE resource_kind <> 'der'")
    copy = _curtailments_as("resource_id", {"run_id", "resource_id"}, kind=True) if _sqlite() else None
    with op.batch_alter_table("clearing_curtailments", copy_from=copy, recreate="auto") as batch_op:
        if not _sqlite():
            batch_op.drop_constraint(CURTAILMENT_PK, type_="primary")
        batch_op.drop_column("resource_kind")
        batch_op.alter_column(
            "resource_id", new_column_name="der_id", existing_type=sa.String(length=36), existing_nullable=False
        )
        if not _sqlite():
            batch_op.create_primary_key(CURTAILMENT_PK, ["run_id", "der_id"])


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE kind = 'split_shortfall'")
    with op.batch_alter_table("notifications", recreate="always") as batch:
        batch.alter_column(
            "kind", existing_type=_notification_kind("split_shortfall"), type_=_notification_kind(), nullable=False
        )
    _curtailments_per_der()
    op.execute("UPDATE clearing_interfaces SET load_kw = 0 WHERE load_kw IS NULL")
    with op.batch_alter_table("clearing_interfaces", schema=None) as batch_op:
        batch_op.alter_column("load_kw", existing_type=sa.Float(), nullable=False)
    op.drop_column("ders", "market_products")  # in place (SQLite 3.35 and later), as it was added
