"""The white paper's 100 kW curtailment example (section 4.3) as a test province, built through the services.

Four PV DERs behind connection points of tdi_a (alt 2, ldc_a), whose export over the window is their approved
static export limit (no instructions, no published envelopes):

===  ==================  =============  ========  ===========  ============  ===============
DER  group               party          export    capacity     offer         connected
===  ==================  =============  ========  ===========  ============  ===============
A    DSO-aggregated      ldc_a (owns)   60 kW     100 kW       50 CAD/MWh    4th (newest)
B    DSO-aggregated      ldc_a (owns)   40 kW     50 kW        120 CAD/MWh   2nd
C    direct              owner_1        150 kW    200 kW       80 CAD/MWh    3rd
D    direct              owner_2        50 kW     150 kW       120 CAD/MWh   1st (oldest)
===  ==================  =============  ========  ===========  ============  ===============

A and B are filed by the DSO itself (DSO-affiliated); tdi_a's direct-participation threshold is lowered to
0 kW so C and D offer to the TSO on their own (direct). Connection order is the order of the LDC's approvals:
D, B, C, A, an hour apart. Real-time offers for the window's first interval carry the prices.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gridbridge.domain.der import ReviewDecision
from gridbridge.domain.market import ResourceKind
from gridbridge.services import curtailment, ders, tdis
from gridbridge.services import offers as market_offers
from gridbridge.services.context import Context
from market_province import item, rt_interval
from registry_province import Province, build_province, spec

EXAMPLE = {  # key: (filer and owner, capability kW, export limit kW, price CAD/MWh)
    "A": ("ldc_a", 100.0, 60.0, 50),
    "B": ("ldc_a", 50.0, 40.0, 120),
    "C": ("owner_1", 200.0, 150.0, 80),
    "D": ("owner_2", 150.0, 50.0, 120),
}
CONNECTION_ORDER = ("D", "B", "C", "A")


def build_curtailment_province(database_url: str) -> tuple[Province, datetime, datetime]:
    """The province of the module docstring; returns it with the window (30 minutes from 30 minutes ahead)."""
    province = build_province(database_url, with_ders=False)
    points = province.points["tdi_a"]
    province.run(
        "ldc_a",
        lambda ctx: tdis.update_limits(
            ctx, province.tdis["tdi_a"], import_limit_kw=None, export_limit_kw=None, direct_threshold_kw=0.0
        ),
    )
    for k, (key, (filer, capability_kw, _, _)) in enumerate(EXAMPLE.items()):

        def file(ctx: Context, key: str = key, capability_kw: float = capability_kw, k: int = k) -> str:
            return ders.request_interconnection(ctx, spec(f"der-{key}", capability_kw), points[k]).id

        province.ders[key] = str(province.run(filer, file))
    for key in CONNECTION_ORDER:
        province.clock.advance(timedelta(hours=1))

        def approve(ctx: Context, key: str = key) -> None:
            der_id = province.ders[key]
            ders.start_review(ctx, der_id)
            ders.decide_review(
                ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity", export_limit_kw=EXAMPLE[key][2]
            )
            ders.commission(ctx, der_id)

        province.run("ldc_a", approve)
    start = rt_interval(province, 30)
    end = start + timedelta(minutes=30)
    for key, (filer, _, limit_kw, price) in EXAMPLE.items():
        offer = item(ResourceKind.DER, province.ders[key], start, [(price, limit_kw)])
        acks = province.run(filer, lambda ctx, offer=offer: market_offers.submit_offers(ctx, [offer]))
        assert all(a.accepted for a in acks), [a.message for a in acks]
    return province, start, end


def publish(province: Province, rule: str, parameters: dict[str, str] | None = None, **options: object) -> None:
    """ldc_a publishes ``rule`` at tdi_a, in force now."""
    province.run(
        "ldc_a",
        lambda ctx: curtailment.publish_procedure(ctx, province.tdis["tdi_a"], rule, parameters, **options),  # type: ignore[arg-type]
    )
