"""The registry test province extended for the coordination cycle: one T-D interface under each coordination model.

``build_market_province`` starts from ``registry_province.build_province`` (tdi_a under alt 2 and tdi_b under
Total DSO, five 60 kW PV DERs a1-a3, b1, b2) and adds, through the real services:

==========  =================  ======================================================================================
interface   model / LDC        DERs (all in service; kW are the DER's capability, the approved static export limit)
==========  =================  ======================================================================================
tdi_a       alt 2 / ldc_a      a1, a2, a3 (60 kW PV, below the 1,000 kW threshold); big_a (1,500 kW CHP, owner_2:
                               direct); dr_a (200 kW demand response, agg_1 for owner_1)
tdi_b       Total DSO / ldc_b  b1, b2 (60 kW PV)
tdi_t       Total TSO / ldc_a  t1 (500 kW PV, limit 300, owner_1); t2 (200 kW PV, owner_2); t3 (100 kW storage, agg_2
                               for owner_2)
tdi_m       alt 1 / ldc_b      m1 (400 kW storage, limit 250, owner_2); m2 (300 kW PV, agg_1 for owner_1);
                               m3 (60 kW PV, owner_1: below the 100 kW threshold)
==========  =================  ======================================================================================

Interface limits: import 5,000 kW and export 2,000 kW (tdi_a, tdi_b), 4,000 / 3,000 (tdi_t, tdi_m).
Interval helpers give real-time and day-ahead intervals after the province's clock (T0).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from gridbridge.domain.coordination import ModelName
from gridbridge.domain.der import ReviewDecision, Technology
from gridbridge.domain.market import OfferItem, ResourceKind
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.services import ders, tdis
from gridbridge.services.context import Context
from registry_province import GRID, T0, Province, build_province, small_network, spec

RT = Market.REAL_TIME
DA = Market.DAY_AHEAD


def rt_interval(province: Province, minutes_ahead: int = 60) -> datetime:
    """A real-time interval start ``minutes_ahead`` after the province's clock (rounded down to 5 minutes)."""
    now = province.clock.now() + timedelta(minutes=minutes_ahead)
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)


def da_interval(province: Province, hours_ahead: int = 24) -> datetime:
    """A day-ahead interval start ``hours_ahead`` after the province's clock (a whole hour)."""
    return (province.clock.now() + timedelta(hours=hours_ahead)).replace(minute=0, second=0, microsecond=0)


def item(
    kind: ResourceKind,
    resource_id: str,
    interval: datetime,
    segments: list[tuple[str | float, str | float]],
    *,
    market: Market = RT,
    product: Product = Product.ENERGY,
    side: Side = Side.OFFER,
) -> OfferItem:
    """An offer item from ``(price CAD/MWh, quantity kW)`` pairs."""
    return OfferItem(
        kind,
        resource_id,
        product,
        market,
        side,
        interval,
        tuple(OfferSegment(Decimal(str(p)), Decimal(str(q))) for p, q in segments),
    )


def _add_tdi(province: Province, name: str, ldc: str, model: ModelName, import_kw: float, export_kw: float) -> None:
    def create(ctx: Context) -> str:
        return tdis.create_tdi(
            ctx,
            name=name,
            price_node=name.upper(),
            dso_id=province.ids[ldc],
            model=model,
            import_limit_kw=import_kw,
            export_limit_kw=export_kw,
        ).id

    province.tdis[name] = str(province.run("tso", create))
    with province.platform.context() as ctx:
        ctx.uow.networks.save(province.tdis[name], small_network(), source=f"simbench:{GRID}", replace=False)
        province.points[name] = [p.id for p in ctx.uow.networks.connection_points(province.tdis[name])]


def _add_der(
    province: Province,
    key: str,
    filer: str,
    owner: str | None,
    tdi: str,
    point: int,
    capability_kw: float,
    technology: Technology = Technology.PV,
    *,
    import_kw: float = 0.0,
    e_kwh: float | None = None,
    export_limit_kw: float | None = None,
    ldc: str,
) -> None:
    def file(ctx: Context) -> str:
        owner_id = province.ids[owner] if owner else None
        s = spec(f"der-{key}", capability_kw, technology, import_kw, e_kwh)
        return ders.request_interconnection(ctx, s, province.points[tdi][point], owner_id=owner_id).id

    der_id = str(province.run(filer, file))
    province.ders[key] = der_id

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, der_id)
        ders.decide_review(
            ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity", export_limit_kw=export_limit_kw
        )
        ders.commission(ctx, der_id)

    province.run(ldc, approve)


def build_market_province(database_url: str) -> Province:
    """Build the province of the module docstring on ``database_url``."""
    province = build_province(database_url)
    _add_tdi(province, "tdi_t", "ldc_a", ModelName.TOTAL_TSO, 4000, 3000)
    _add_tdi(province, "tdi_m", "ldc_b", ModelName.ALT1_MINIMAL_DSO, 4000, 3000)
    pa = 3  # a1-a3 use the first three connection points of tdi_a
    _add_der(province, "big_a", "owner_2", None, "tdi_a", pa, 1500.0, Technology.CHP, ldc="ldc_a")
    _add_der(
        province,
        "dr_a",
        "agg_1",
        "owner_1",
        "tdi_a",
        pa + 1,
        0.0,
        Technology.DEMAND_RESPONSE,
        import_kw=200.0,
        ldc="ldc_a",
    )
    _add_der(province, "t1", "owner_1", None, "tdi_t", 0, 500.0, export_limit_kw=300.0, ldc="ldc_a")
    _add_der(province, "t2", "owner_2", None, "tdi_t", 1, 200.0, ldc="ldc_a")
    _add_der(
        province,
        "t3",
        "agg_2",
        "owner_2",
        "tdi_t",
        2,
        100.0,
        Technology.STORAGE,
        import_kw=100.0,
        e_kwh=200.0,
        ldc="ldc_a",
    )
    _add_der(
        province,
        "m1",
        "owner_2",
        None,
        "tdi_m",
        0,
        400.0,
        Technology.STORAGE,
        import_kw=400.0,
        e_kwh=800.0,
        export_limit_kw=250.0,
        ldc="ldc_b",
    )
    _add_der(province, "m2", "agg_1", "owner_1", "tdi_m", 1, 300.0, ldc="ldc_b")
    _add_der(province, "m3", "owner_1", None, "tdi_m", 2, 60.0, ldc="ldc_b")
    return province


__all__ = ["DA", "RT", "T0", "build_market_province", "da_interval", "item", "rt_interval"]
