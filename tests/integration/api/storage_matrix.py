"""A storage DER of the permission-matrix province, made through the real services.

``add_storage(matrix)`` has agg_2 file ``st1`` for owner_2 (whom it then represents): a 50 kW / 200 kWh battery at
b1's connection point on tdi_b (Total DSO, ldc_b), approved and commissioned by ldc_b. It is the target of the
state-of-charge routes. Who sees it: ldc_b, agg_2, owner_2 and observers (under Total DSO the TSO sees no DER);
it shares b1's point, so the points each caller reads stay the same.
"""

from __future__ import annotations

from api_province import MatrixProvince

from gridbridge.domain.der import ReviewDecision, Technology
from gridbridge.services import ders
from gridbridge.services.context import Context
from registry_province import spec


def add_storage(matrix: MatrixProvince) -> None:
    """The battery of the module docstring, labelled ``st1`` among the province's DERs."""
    province = matrix.province
    point = province.run("regulator", lambda ctx: ctx.uow.ders.get(province.ders["b1"])).connection_point_id  # type: ignore[union-attr]

    def file(ctx: Context) -> str:
        battery = spec("der-st1", 50.0, Technology.STORAGE, 50.0, 200.0)
        return ders.request_interconnection(ctx, battery, point, owner_id=province.ids["owner_2"]).id

    der_id = province.run("agg_2", file)

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, der_id)
        ders.decide_review(ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity")
        ders.commission(ctx, der_id)

    province.run("ldc_b", approve)
    province.ders["st1"] = der_id
