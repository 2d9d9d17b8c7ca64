"""Helpers of the conflict tests: a storage DER, a published envelope (or outage), and a TSO dispatch straight
to a DER, each made through the real services and store of a test province."""

from __future__ import annotations

from datetime import datetime, timedelta

from gridbridge.domain.der import ReviewDecision, Technology
from gridbridge.domain.envelope_publication import EnvelopeCause, StoredEnvelope
from gridbridge.domain.market import Instruction, InstructionKind, InstructionProduct, InstructionStatus, ResourceKind
from gridbridge.services import conflicts, ders
from gridbridge.services.context import Context
from registry_province import Province, spec


def add_battery(p: Province, key: str = "bat", point: int = 5) -> str:
    """owner_2's 1,000 kW / 4,000 kWh battery (the white paper's 4-hour battery) at a free point of tdi_a, in
    service."""

    def file(ctx: Context) -> str:
        s = spec(f"der-{key}", 1000.0, Technology.STORAGE, 1000.0, 4000.0)
        return ders.request_interconnection(ctx, s, p.points["tdi_a"][point]).id

    der_id = p.run("owner_2", file)

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, der_id)
        ders.decide_review(ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity")
        ders.commission(ctx, der_id)

    p.run("ldc_a", approve)
    p.ders[key] = der_id
    return der_id


def publish_envelope(p: Province, der_key: str, start: datetime, end: datetime, limit_kw: float, binding: str) -> None:
    """ldc_a publishes an envelope of ``limit_kw`` (export and import) at the DER's connection point; with
    binding ``de-energised`` it is an outage."""

    def publish(ctx: Context) -> None:
        der = ctx.uow.ders.get(p.ders[der_key])
        assert der is not None
        ctx.uow.envelopes.envelopes.publish(
            [
                StoredEnvelope(
                    tdi_id=der.tdi_id,
                    connection_point_id=der.connection_point_id,
                    connection_point=str(der.connection_point_id),
                    interval_start=start,
                    interval_end=end,
                    p_export_max_kw=limit_kw,
                    p_import_max_kw=limit_kw,
                    binding_export=binding,
                    binding_import=binding,
                    expiry=end,
                    cause=EnvelopeCause.NETWORK_EVENT,
                    status=binding,
                )
            ],
            at=ctx.clock.now(),
        )

    p.run("ldc_a", publish)


def tso_dispatch(p: Province, der_key: str, start: datetime, end: datetime, p_kw: float) -> Instruction:
    """A TSO dispatch straight to a DER (as the market issues them where the TSO dispatches DERs directly), through
    the conflict check when it is issued; returns it as stored."""

    def issue(ctx: Context) -> Instruction:
        der = ctx.uow.ders.get(p.ders[der_key])
        assert der is not None
        now = ctx.clock.now()
        instruction = Instruction(
            id=ctx.new_id(),
            kind=InstructionKind.DISPATCH,
            market=None,
            product=InstructionProduct.ENERGY,
            interval_start=start,
            interval_end=end,
            p_kw=p_kw,
            issuer_id=p.ids["tso"],
            recipient_id=der.representative_id or der.owner_id,
            resource_kind=ResourceKind.DER,
            resource_id=der.id,
            der_id=der.id,
            tdi_id=der.tdi_id,
            dso_id=der.dso_id,
            parent_id=None,
            run_id=None,
            offer_id=None,
            status=InstructionStatus.ISSUED,
            issued_at=now,
            deadline_at=now + timedelta(days=3),
            tso_visible=True,
        )
        (checked,) = conflicts.check_instructions(ctx, [instruction])
        ctx.uow.market.instructions.add_many([checked])
        return checked

    return p.run("tso", issue)
