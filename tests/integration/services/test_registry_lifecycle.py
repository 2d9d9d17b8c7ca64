"""DER lifecycle, interconnection review and territory rules through the real services and store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Table, func, select

from gridbridge.domain.der import DerSpec, ReviewDecision, Technology
from gridbridge.domain.errors import ConflictError, GridbridgeError, NotFound, PermissionDenied, ValidationFailed
from gridbridge.domain.lifecycle import DerStatus
from gridbridge.services import ders
from gridbridge.services.context import Context
from gridbridge.store.tables import audit_records
from gridbridge.store.tables import ders as ders_table
from registry_province import Province, build_province, spec


@pytest.fixture
def province(database_url: str) -> Province:
    return build_province(database_url)


def _count(province: Province, table: Table) -> int:
    with province.platform.unit_of_work() as uow:
        return int(uow.session.execute(select(func.count()).select_from(table)).scalar_one())


def test_full_lifecycle_is_audited(province: Province) -> None:
    point = province.points["tdi_a"][3]
    der_id = str(province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, spec("new"), point).id))
    province.run("ldc_a", lambda ctx: ders.start_review(ctx, der_id))
    province.run(
        "ldc_a",
        lambda ctx: ders.decide_review(
            ctx, der_id, ReviewDecision.APPROVED, "ok", export_limit_kw=5.0, attachments=["study.pdf"]
        ),
    )
    der = province.run("ldc_a", lambda ctx: ders.commission(ctx, der_id))
    assert der.status is DerStatus.IN_SERVICE
    assert der.export_limit_kw == 5.0
    with province.platform.unit_of_work() as uow:
        actions = [e.action for e in uow.audit.entries() if e.entity_id == der_id]
        stored = uow.ders.get(der_id)
        assert stored is not None
        assert stored.reviews[0].attachments == ["study.pdf"]
    assert actions == ["der.request", "der.start_review", "der.review.approved", "der.commission"]


def test_illegal_transition_names_state_and_moves_and_changes_nothing(province: Province) -> None:
    point = province.points["tdi_a"][3]
    der_id = str(province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, spec("x"), point).id))
    before = _count(province, audit_records)
    with pytest.raises(ConflictError) as caught:
        province.run("ldc_a", lambda ctx: ders.commission(ctx, der_id))
    assert caught.value.code == "der.illegal_transition"
    assert caught.value.details["current_state"] == "requested"
    assert caught.value.details["allowed_actions"] == ["start_review", "retire"]
    assert _count(province, audit_records) == before


def test_der_at_another_ldcs_point_is_refused(province: Province) -> None:
    foreign_point = province.points["tdi_b"][1]
    before = (_count(province, ders_table), _count(province, audit_records))
    with pytest.raises(ValidationFailed) as caught:
        province.run("ldc_a", lambda ctx: ders.request_interconnection(ctx, spec("mine"), foreign_point))
    assert caught.value.code == "der.outside_territory"
    assert caught.value.field == "connection_point_id"
    with pytest.raises(ValidationFailed) as addressed:
        province.run(
            "owner_1",
            lambda ctx: ders.request_interconnection(
                ctx, spec("wrong-ldc"), foreign_point, ldc_id=province.ids["ldc_a"]
            ),
        )
    assert addressed.value.code == "der.outside_territory"
    assert (_count(province, ders_table), _count(province, audit_records)) == before


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        (spec("neg", export_kw=-1.0), "p_export_kw", "validation.negative"),
        (spec("zero", export_kw=0.0), "p_export_kw", "der.no_capacity"),
        (spec("", export_kw=1.0), "name", "validation.required"),
        (spec("bess", technology=Technology.STORAGE, import_kw=5.0), "e_kwh", "der.storage_needs_energy"),
    ],
)
def test_bad_capacities_name_field_and_rule(province: Province, bad: DerSpec, field: str, code: str) -> None:
    point = province.points["tdi_a"][0]
    with pytest.raises(ValidationFailed) as caught:
        province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, bad, point))
    assert (caught.value.field, caught.value.code) == (field, code)


def test_unknown_connection_point_is_not_found(province: Province) -> None:
    with pytest.raises(NotFound) as caught:
        province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, spec("ghost"), 987654))
    assert caught.value.field == "connection_point_id"


def test_only_the_territory_ldc_reviews_and_others_see_nothing(province: Province) -> None:
    point = province.points["tdi_a"][3]
    der_id = str(province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, spec("y"), point).id))
    with pytest.raises(NotFound):  # ldc_b cannot see a DER in ldc_a's territory: 404, not 403
        province.run("ldc_b", lambda ctx: ders.start_review(ctx, der_id))
    with pytest.raises(PermissionDenied):  # the owner may see it but may not review it
        province.run("owner_1", lambda ctx: ders.start_review(ctx, der_id))
    with pytest.raises(NotFound):
        province.run("owner_2", lambda ctx: ders.get_der(ctx, der_id))


def test_rejection_needs_a_reason(province: Province) -> None:
    point = province.points["tdi_a"][3]
    der_id = str(province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, spec("z"), point).id))
    province.run("ldc_a", lambda ctx: ders.start_review(ctx, der_id))
    with pytest.raises(ValidationFailed) as caught:
        province.run("ldc_a", lambda ctx: ders.decide_review(ctx, der_id, ReviewDecision.REJECTED, "  "))
    assert caught.value.code == "review.reason_required"
    der = province.run(
        "ldc_a", lambda ctx: ders.decide_review(ctx, der_id, ReviewDecision.REJECTED, "protection coordination")
    )
    assert der.status is DerStatus.REJECTED


def test_review_overdue_after_deadline(province: Province) -> None:
    point = province.points["tdi_a"][3]
    der_id = str(province.run("owner_1", lambda ctx: ders.request_interconnection(ctx, spec("late"), point).id))
    der = province.run("ldc_a", lambda ctx: ders.get_der(ctx, der_id))
    assert der.review_due_at == province.clock.now() + timedelta(days=60)


def test_lists_never_carry_foreign_rows(province: Province) -> None:
    from gridbridge.services.ports import Page

    def names(who: str) -> set[str]:
        found = province.run(who, lambda ctx: ders.list_ders(ctx, Page(limit=1000)))
        return {d.name for d in found}

    assert names("ldc_a") == {"der-a1", "der-a2", "der-a3"}
    assert names("ldc_b") == {"der-b1", "der-b2"}
    assert names("agg_1") == {"der-a2", "der-a3", "der-b2"}
    assert names("agg_2") == {"der-b1"}
    assert names("owner_1") == {"der-a1", "der-a2", "der-b2"}
    assert names("owner_2") == {"der-a3", "der-b1"}
    assert names("regulator") == {"der-a1", "der-a2", "der-a3", "der-b1", "der-b2"}
    # TSO: alt 2 shows market-participating DERs only (none enrolled yet); total DSO shows none
    assert names("tso") == set()


def test_errors_are_domain_errors_with_registered_codes(province: Province) -> None:
    def bad(ctx: Context) -> None:
        ders.get_der(ctx, "nope")

    with pytest.raises(GridbridgeError) as caught:
        province.run("ldc_a", bad)
    assert caught.value.status == 404
