"""T-D interfaces: dated, never retroactive model changes, and who may change what."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gridbridge.domain.coordination import ModelName
from gridbridge.domain.errors import NotFound, PermissionDenied, ValidationFailed
from gridbridge.services import networks, tdis
from registry_province import T0, Province, build_province


@pytest.fixture
def province(sqlite_url: str) -> Province:
    return build_province(sqlite_url, with_ders=False)


def test_model_change_takes_effect_on_its_date_and_not_before(province: Province) -> None:
    tdi_id = province.tdis["tdi_a"]
    when = T0 + timedelta(days=30)
    province.run("ldc_a", lambda ctx: tdis.schedule_model_change(ctx, tdi_id, ModelName.TOTAL_DSO, when))
    with province.platform.unit_of_work() as uow:
        assert tdis.model_in_force(uow, tdi_id, when - timedelta(seconds=1)).name is ModelName.ALT2_HYBRID_DSO
        assert tdis.model_in_force(uow, tdi_id, when).name is ModelName.TOTAL_DSO


def test_retroactive_change_is_refused(province: Province) -> None:
    tdi_id = province.tdis["tdi_a"]
    with pytest.raises(ValidationFailed) as caught:
        province.run(
            "tso", lambda ctx: tdis.schedule_model_change(ctx, tdi_id, ModelName.TOTAL_TSO, T0 - timedelta(hours=1))
        )
    assert (caught.value.code, caught.value.field) == ("tdi.retroactive_model_change", "effective_from")


def test_only_owner_dso_or_tso_change_an_interface(province: Province) -> None:
    tdi_id = province.tdis["tdi_a"]
    with pytest.raises(PermissionDenied):
        province.run(
            "ldc_b",
            lambda ctx: tdis.update_limits(
                ctx, tdi_id, import_limit_kw=1.0, export_limit_kw=None, direct_threshold_kw=None
            ),
        )
    with pytest.raises(PermissionDenied):
        province.run(
            "agg_1", lambda ctx: tdis.schedule_model_change(ctx, tdi_id, ModelName.TOTAL_DSO, T0 + timedelta(days=1))
        )
    updated = province.run(
        "tso",
        lambda ctx: tdis.update_limits(
            ctx, tdi_id, import_limit_kw=1234.0, export_limit_kw=None, direct_threshold_kw=None
        ),
    )
    assert updated.import_limit_kw == 1234.0
    with pytest.raises(ValidationFailed):
        province.run(
            "tso",
            lambda ctx: tdis.update_limits(
                ctx, tdi_id, import_limit_kw=-1.0, export_limit_kw=None, direct_threshold_kw=None
            ),
        )


def test_network_import_errors_change_nothing(province: Province) -> None:
    tdi_id = province.tdis["tdi_a"]

    def count_audit() -> int:
        with province.platform.unit_of_work() as uow:
            return len(list(uow.audit.entries()))

    before = count_audit()
    with pytest.raises(ValidationFailed) as unknown:
        province.run("ldc_a", lambda ctx: networks.import_network(ctx, tdi_id, "simbench:not-a-code", replace=True))
    assert unknown.value.code == "network.unknown_simbench_code"
    with pytest.raises(PermissionDenied):
        province.run("ldc_b", lambda ctx: networks.import_network(ctx, tdi_id, "simbench:1-LV-rural1--0-sw"))
    with pytest.raises(NotFound):
        province.run("ldc_a", lambda ctx: networks.import_network(ctx, "no-such-tdi", "simbench:1-LV-rural1--0-sw"))
    assert count_audit() == before
    with province.platform.unit_of_work() as uow:
        assert len(uow.networks.connection_points(tdi_id)) == len(province.points["tdi_a"])
