"""A small test province built through the real services, shared by service and API tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TypeVar

from gridbridge.adapters.network_io import import_network
from gridbridge.cli.bootstrap import Platform
from gridbridge.cli.config import Settings
from gridbridge.domain.clock import FixedClock
from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import DerSpec, MeterPosition, ReviewDecision, Technology
from gridbridge.domain.network import NetworkModel
from gridbridge.domain.permissions import Caller
from gridbridge.domain.roles import DsoKind, Role, Service
from gridbridge.services import aggregations, ders, participants, tdis
from gridbridge.services.context import Context

T = TypeVar("T")
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
GRID = "1-LV-rural1--0-sw"


@cache
def small_network() -> NetworkModel:
    """A small SimBench LV grid, loaded once per process."""
    return import_network(f"simbench:{GRID}", name=GRID)


@dataclass
class Province:
    """Participants, callers, interfaces and DERs of the test province."""

    platform: Platform
    clock: FixedClock
    ids: dict[str, str] = field(default_factory=dict)
    callers: dict[str, Caller] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    tdis: dict[str, str] = field(default_factory=dict)
    points: dict[str, list[int]] = field(default_factory=dict)
    ders: dict[str, str] = field(default_factory=dict)
    aggregations: dict[str, str] = field(default_factory=dict)

    def run(self, who: str, action: Callable[[Context], T]) -> T:
        """Run ``action(ctx)`` as participant ``who`` in one committed transaction."""
        with self.platform.context(self.callers[who]) as ctx:
            return action(ctx)


def spec(
    name: str,
    export_kw: float = 10.0,
    technology: Technology = Technology.PV,
    import_kw: float = 0.0,
    e_kwh: float | None = None,
) -> DerSpec:
    """A DER specification for tests."""
    return DerSpec(name, technology, export_kw, import_kw, e_kwh, None, MeterPosition.BEHIND_THE_METER)


PARTICIPANTS = [
    ("tso", Role.TSO, None),
    ("ldc_a", Role.DSO, DsoKind.LDC),
    ("ldc_b", Role.DSO, DsoKind.INDEPENDENT_DSO),
    ("agg_1", Role.AGGREGATOR, None),
    ("agg_2", Role.AGGREGATOR, None),
    ("owner_1", Role.DER_OWNER, None),
    ("owner_2", Role.DER_OWNER, None),
    ("regulator", Role.OBSERVER, None),
]


def build_province(database_url: str, *, with_ders: bool = True) -> Province:
    """Create the province: two LDCs with one interface each (alt 2 under ldc_a, total DSO under ldc_b)."""
    clock = FixedClock(T0)
    platform = Platform(Settings(database_url=database_url), clock=clock)
    platform.upgrade()
    province = Province(platform, clock)
    with platform.context() as ctx:
        for name, role, kind in PARTICIPANTS:
            p = participants.create_participant(ctx, name, role, kind)
            user = participants.create_user(ctx, p.id, f"{name}-user")
            province.ids[name] = p.id
            province.callers[name] = Caller(user.id, p.id, role, p.dso_kind)
            province.tokens[name] = participants.issue_token(ctx, user.id, "tests")
    for tdi_name, ldc, model in (
        ("tdi_a", "ldc_a", ModelName.ALT2_HYBRID_DSO),
        ("tdi_b", "ldc_b", ModelName.TOTAL_DSO),
    ):
        with platform.context(province.callers["tso"]) as ctx:
            tdi = tdis.create_tdi(
                ctx,
                name=tdi_name,
                price_node=tdi_name.upper(),
                dso_id=province.ids[ldc],
                model=model,
                import_limit_kw=5000,
                export_limit_kw=2000,
            )
        province.tdis[tdi_name] = tdi.id
        with platform.context() as ctx:
            ctx.uow.networks.save(tdi.id, small_network(), source=f"simbench:{GRID}", replace=False)
            province.points[tdi_name] = [p.id for p in ctx.uow.networks.connection_points(tdi.id)]
    if with_ders:
        _file_ders(province)
    return province


def _file_ders(province: Province) -> None:
    """Five DERs, all in service: a1 (owner_1, tdi_a), a2 (owner_1 via agg_1, tdi_a), a3 (owner_2 via agg_1,
    tdi_a), b1 (owner_2 via agg_2, tdi_b), b2 (owner_1 via agg_1, tdi_b)."""
    pa, pb = province.points["tdi_a"], province.points["tdi_b"]
    plans = [
        ("a1", "owner_1", None, pa[0]),
        ("a2", "agg_1", "owner_1", pa[1]),
        ("a3", "agg_1", "owner_2", pa[2]),
        ("b1", "agg_2", "owner_2", pb[0]),
        ("b2", "agg_1", "owner_1", pb[1]),
    ]
    for key, who, owner, point in plans:

        def file(ctx: Context, key: str = key, owner: str | None = owner, point: int = point) -> str:
            return ders.request_interconnection(
                ctx, spec(f"der-{key}", 60.0), point, owner_id=province.ids[owner] if owner else None
            ).id

        province.ders[key] = province.run(who, file)
    for key, ldc in (("a1", "ldc_a"), ("a2", "ldc_a"), ("a3", "ldc_a"), ("b1", "ldc_b"), ("b2", "ldc_b")):

        def approve(ctx: Context, der_id: str = province.ders[key]) -> None:
            ders.start_review(ctx, der_id)
            ders.decide_review(ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity")
            ders.commission(ctx, der_id)

        province.run(ldc, approve)


def enrol(
    province: Province,
    aggregator: str,
    name: str,
    der_keys: list[str],
    services: Mapping[Service, float | None],
    *,
    multi_tdi: bool = False,
    approve_as: list[str] | None = None,
) -> str:
    """Create an aggregation, request members, and (optionally) have the LDCs approve them."""

    def create(ctx: Context) -> str:
        agg = aggregations.create_aggregation(ctx, name, services, multi_tdi=multi_tdi)
        ctx.uow.flush()
        aggregations.request_members(ctx, agg.id, [province.ders[k] for k in der_keys], T0 + timedelta(days=1))
        return agg.id

    agg_id = province.run(aggregator, create)
    for ldc in approve_as or []:

        def review(ctx: Context) -> None:
            view = aggregations.get_aggregation(ctx, agg_id)
            for member in view.members:
                if member.dso_id == ctx.caller.participant_id and member.status.value == "pending":
                    aggregations.review_member(ctx, agg_id, member.id, ReviewDecision.APPROVED)

        province.run(ldc, review)
    province.aggregations[name] = agg_id
    return agg_id
