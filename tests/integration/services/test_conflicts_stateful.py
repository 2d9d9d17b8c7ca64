"""A hypothesis state machine drives the services: TSO dispatches straight to DERs, DSO distribution service
dispatches, offers, published envelopes and outages (each followed by the check before dispatch). After every
step no DER holds live instructions that jointly break its capability, its envelopes in force or its storage
(over each run of intervals under instructions: between runs the owner may recharge), and every stored conflict
has exactly one resolution.

One SQLite province is shared by every example (building one takes seconds); each example starts a day later,
so its instructions never meet an earlier example's. Derandomised, no deadline, a few examples: well under
20 s of steps on a quiet machine.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
from conflict_helpers import add_battery, publish_envelope, tso_dispatch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from gridbridge.domain.envelope_publication import DE_ENERGISED_BINDING
from gridbridge.domain.errors import GridbridgeError
from gridbridge.domain.market import (
    OfferItem,
    ResourceKind,
)
from gridbridge.domain.offers import Market, OfferSegment, Product, Side
from gridbridge.services import conflicts, instructions, offers
from gridbridge.services.context import Context
from gridbridge.store.conflict_tables import conflict_resolutions
from gridbridge.store.conflict_tables import conflicts as conflicts_table
from registry_province import Province, build_province

STEP = timedelta(minutes=5)
DERS = ("a1", "a2", "bat")
_TOL = 1e-3


def _violations(p: Province, day: datetime) -> list[str]:
    """Every DER's live instructions over ``day`` against its capability, envelopes, outages and storage."""
    out: list[str] = []
    end = day + timedelta(days=1)
    n = int((end - day) / STEP)
    with p.platform.context() as ctx:
        for key in DERS:
            der = ctx.uow.ders.get(p.ders[key])
            assert der is not None
            live = ctx.uow.conflicts.der_instructions([der.id], day, end)
            p_kw = np.zeros(n)
            covered = np.zeros(n, dtype=bool)
            for i in live:
                a = max(0, int((i.interval_start - day) / STEP))
                b = min(n, int((i.interval_end - day) / STEP))
                p_kw[a:b] += i.p_kw
                covered[a:b] = True
            hi = np.full(n, der.p_export_kw)
            lo = np.full(n, -der.p_import_kw)
            if der.export_limit_kw is not None:
                hi = np.minimum(hi, der.export_limit_kw)
            if der.import_limit_kw is not None:
                lo = np.maximum(lo, -der.import_limit_kw)
            for env in ctx.uow.envelopes.envelopes.current([der.connection_point_id], day, end):
                a = max(0, int((env.interval_start - day) / STEP))
                b = min(n, -(-int((env.interval_end - day).total_seconds()) // int(STEP.total_seconds())))
                hi[a:b] = np.minimum(hi[a:b], env.p_export_max_kw)
                lo[a:b] = np.maximum(lo[a:b], -env.p_import_max_kw)
            bad = np.flatnonzero((p_kw > hi + _TOL) | (p_kw < lo - _TOL))
            if bad.size:
                out.append(f"{key}: {p_kw[bad[0]]:g} kW outside [{lo[bad[0]]:g}, {hi[bad[0]]:g}] at step {bad[0]}")
            if der.e_kwh:
                # per run of intervals under instructions (between runs the owner may recharge)
                edges = np.flatnonzero(np.diff(np.concatenate(([0], covered.astype(np.int8), [0]))))
                for a, b in zip(edges[::2], edges[1::2], strict=True):
                    cum = np.concatenate(([0.0], np.cumsum(-p_kw[a:b] * STEP.total_seconds() / 3600)))
                    if cum.max() - cum.min() > der.e_kwh + _TOL:
                        out.append(f"{key}: needs {cum.max() - cum.min():g} kWh of a {der.e_kwh:g} kWh store")
    return out


def test_no_der_holds_jointly_infeasible_instructions(tmp_path: Path) -> None:
    p = build_province(f"sqlite+pysqlite:///{tmp_path / 'stateful.db'}")
    add_battery(p)

    class Services(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            p.clock.advance(timedelta(days=1))
            self.day = (p.clock.now() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)

        def _window(self, hour: int, hours: int) -> tuple[datetime, datetime]:
            start = self.day + timedelta(hours=hour)
            return start, start + timedelta(hours=hours)

        def _recheck(self, key: str) -> None:
            def run(ctx: Context) -> None:
                live = ctx.uow.conflicts.der_instructions([p.ders[key]], self.day, self.day + timedelta(days=1))
                conflicts.check_before_dispatch(ctx, live)

            p.run("ldc_a", run)

        @rule(
            key=st.sampled_from(DERS),
            hour=st.integers(0, 20),
            hours=st.integers(1, 4),
            p_kw=st.integers(-120, 120).map(lambda x: x * 10.0),
        )
        def tso_dispatch(self, key: str, hour: int, hours: int, p_kw: float) -> None:
            start, end = self._window(hour, hours)

            tso_dispatch(p, key, start, end, p_kw)

        @rule(
            key=st.sampled_from(DERS),
            hour=st.integers(0, 20),
            hours=st.integers(1, 4),
            p_kw=st.integers(-120, 120).map(lambda x: x * 10.0),
        )
        def dso_dispatch(self, key: str, hour: int, hours: int, p_kw: float) -> None:
            start, end = self._window(hour, hours)
            with contextlib.suppress(GridbridgeError):  # refused (0 kW, beyond capability): nothing changed
                p.run(
                    "ldc_a",
                    lambda ctx: instructions.dispatch_distribution_service(
                        ctx, p.ders[key], p_kw=p_kw, interval_start=start, interval_end=end, reason="nwa"
                    ),
                )

        @rule(key=st.sampled_from(DERS), hour=st.integers(0, 22), kw=st.integers(0, 80), dead=st.booleans())
        def envelope(self, key: str, hour: int, kw: int, dead: bool) -> None:
            start, end = self._window(hour, 2)
            binding = DE_ENERGISED_BINDING if dead else "thermal:line"
            publish_envelope(p, key, start, end, 0.0 if dead else float(kw), binding)
            self._recheck(key)  # the check before dispatch applies the new envelope or outage

        @rule(qty=st.integers(1, 6).map(lambda x: x * 10))
        def offer(self, qty: int) -> None:
            start = (p.clock.now() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
            item = OfferItem(
                ResourceKind.DER,
                p.ders["a1"],
                Product.ENERGY,
                Market.REAL_TIME,
                Side.OFFER,
                start,
                (OfferSegment(Decimal("20"), Decimal(qty)),),
            )
            with contextlib.suppress(GridbridgeError):
                p.run("owner_1", lambda ctx: offers.submit_offers(ctx, [item]))

        @invariant()
        def every_der_feasible(self) -> None:
            assert _violations(p, self.day) == []

        @invariant()
        def one_resolution_per_conflict(self) -> None:
            with p.platform.unit_of_work() as uow:
                n_conflicts = uow.session.execute(select(func.count()).select_from(conflicts_table)).scalar_one()
                joined = uow.session.execute(
                    select(func.count()).select_from(
                        conflicts_table.join(
                            conflict_resolutions, conflict_resolutions.c.conflict_id == conflicts_table.c.id
                        )
                    )
                ).scalar_one()
            assert joined == n_conflicts

    run_state_machine_as_test(
        Services,
        settings=settings(
            max_examples=3,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    # the machine did run into conflicts (and resolved them)
    with p.platform.unit_of_work() as uow:
        kinds = set(uow.session.execute(select(conflicts_table.c.kind)).scalars())
    assert len(kinds) >= 2, kinds
