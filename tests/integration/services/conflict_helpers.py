"""Helpers of the conflict tests: a DER in service (a storage DER), a published envelope (or outage), a TSO dispatch
straight to a DER and a DSO's distribution service dispatch, each made through the real services and store of a
test province."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from gridbridge.domain.der import DerSpec, ReviewDecision, Technology
from gridbridge.domain.envelope_publication import EnvelopeCause, StoredEnvelope
from gridbridge.domain.market import Instruction, InstructionKind, InstructionProduct, InstructionStatus, ResourceKind
from gridbridge.services import conflicts, ders, instructions
from gridbridge.services.context import Context
from registry_province import Province, spec


def add_der(p: Province, key: str, filer: str, der_spec: DerSpec, point_id: int, owner: str | None = None) -> str:
    """``filer`` files ``der_spec`` at connection point ``point_id`` (for DER owner ``owner`` when an aggregator
    files for it); its LDC approves it with its capability as static limits and commissions it."""

    def file(ctx: Context) -> str:
        owner_id = p.ids[owner] if owner else None
        return ders.request_interconnection(ctx, der_spec, point_id, owner_id=owner_id).id

    der_id = p.run(filer, file)

    def approve(ctx: Context) -> None:
        ders.start_review(ctx, der_id)
        ders.decide_review(ctx, der_id, ReviewDecision.APPROVED, "within hosting capacity")
        ders.commission(ctx, der_id)

    der = p.run("regulator", lambda ctx: ctx.uow.ders.get(der_id))
    assert der is not None
    p.run(next(name for name, pid in p.ids.items() if pid == der.dso_id), approve)
    p.ders[key] = der_id
    return der_id


def add_battery(
    p: Province, key: str = "bat", point: int = 5, *, round_trip_efficiency: float | None = 1.0, e_kwh: float = 4000.0
) -> str:
    """owner_2's 1,000 kW / 4,000 kWh battery (the white paper's 4-hour battery, losses ignored: round-trip
    efficiency 1.0 declared; ``None`` leaves the platform default) at a free point of tdi_a, in service."""
    s = replace(
        spec(f"der-{key}", 1000.0, Technology.STORAGE, 1000.0, e_kwh), round_trip_efficiency=round_trip_efficiency
    )
    return add_der(p, key, "owner_2", s, p.points["tdi_a"][point])


def point_of(p: Province, key: str) -> int:
    """The connection point of DER ``key``."""
    der = p.run("regulator", lambda ctx: ctx.uow.ders.get(p.ders[key]))
    assert der is not None
    return der.connection_point_id


def dso_dispatch(p: Province, key: str, start: datetime, end: datetime, p_kw: float) -> Instruction:
    """ldc_a dispatches DER ``key`` for a distribution service (``instructions.dispatch_distribution_service``,
    checked for conflicts); returns it as stored."""
    return p.run(
        "ldc_a",
        lambda ctx: instructions.dispatch_distribution_service(
            ctx, p.ders[key], p_kw=p_kw, interval_start=start, interval_end=end, reason="distribution deferral"
        ),
    )


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


def amendment_policy(p: Province, priorities: list[str], window_min: int = 30) -> None:
    """ldc_a declares ``priorities`` at tdi_a and resolves storage-energy conflicts by amendment request with a
    ``window_min`` window."""
    p.run(
        "ldc_a",
        lambda ctx: conflicts.set_policy(
            ctx,
            p.tdis["tdi_a"],
            priorities=priorities,
            rules={"hidden_coupling_energy": "amendment_request"},
            amendment_window_min=window_min,
        ),
    )
