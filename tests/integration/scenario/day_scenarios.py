"""Scenario data for the per-model day tests: one interface under the model being tried, one SimBench LV grid.

The DERs: ``battery_2`` (400 kW storage at LV1.101 Bus 2, below the feeder "LV1.101 Line 12" that the outage
opens from 12:00 to 12:30), ``pv_5`` (300 kW PV at Bus 5, filed by the aggregator for the owner), ``pv_6``
(250 kW PV at Bus 6) and, only where ``big`` is set, ``chp_7`` (1,500 kW CHP at Bus 7: above the hybrid
model's 1,000 kW threshold). A Total TSO interface ``west_ts`` with ``pv_west`` (500 kW, the dearest) is the
TSO's other source. Day-ahead: the 24 hours of 1 June 2026; real-time: seven 5-minute intervals every
10 minutes from 11:40 to 12:40. ``province_day`` drives the whole day at one interface per model.
"""

from __future__ import annotations

from typing import Any

GRID = "simbench:1-LV-rural1--0-sw"
OUTAGE_START, OUTAGE_END = "2026-06-01T12:00:00Z", "2026-06-01T12:30:00Z"


PARTICIPANTS = [
    {"name": "ieso", "role": "tso"},
    {"name": "hydro_south", "role": "dso", "dso_kind": "ldc"},
    {"name": "flexco", "role": "aggregator"},
    {"name": "farm_owner", "role": "der_owner"},
]


def _interface(name: str, model: str) -> dict[str, Any]:
    return {
        "name": name,
        "dso": "hydro_south",
        "model": model,
        "network": GRID,
        "import_limit_kw": 4000,
        "export_limit_kw": 3000,
    }


def _feeder(
    face: str, battery: str, pv5: str, pv6: str, battery_kwh: float = 800
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The three DERs at ``face`` (a ``battery_kwh`` battery at Bus 2, below the faulted line; PV at Bus 5 and
    Bus 6) and their offers."""
    ders: list[dict[str, Any]] = [
        {
            "name": battery,
            "interface": face,
            "point": "LV1.101 Bus 2",
            "technology": "storage",
            "export_kw": 400,
            "import_kw": 400,
            "energy_kwh": battery_kwh,
            "filed_by": "farm_owner",
        },
        {
            "name": pv5,
            "interface": face,
            "point": "LV1.101 Bus 5",
            "export_kw": 300,
            "filed_by": "flexco",
            "owner": "farm_owner",
        },
        {"name": pv6, "interface": face, "point": "LV1.101 Bus 6", "export_kw": 250, "filed_by": "farm_owner"},
    ]
    offers: list[dict[str, Any]] = [
        {"resource": battery, "party": "farm_owner", "segments": [[20, 400]]},
        {"resource": pv5, "party": "flexco", "segments": [[30, 300]]},
        {"resource": pv6, "party": "farm_owner", "segments": [[35, 250]]},
    ]
    return ders, offers


def _chp(name: str, face: str) -> dict[str, Any]:
    return {
        "name": name,
        "interface": face,
        "point": "LV1.101 Bus 7",
        "technology": "chp",
        "export_kw": 1500,
        "filed_by": "farm_owner",
    }


def _cable_fault(face: str) -> dict[str, Any]:
    return {
        "interface": face,
        "starts_at": OUTAGE_START,
        "ends_at": OUTAGE_END,
        "open": ["LV1.101 Line 12"],
        "reason": "cable fault",
    }


def day_scenario(model: str, *, big: bool = False, requirement_kw: float = 600.0) -> dict[str, Any]:
    """The scenario data for ``model`` at interface ``south_ts`` (see the module docstring)."""
    ders, offers = _feeder("south_ts", "battery_2", "pv_5", "pv_6")
    ders.append({"name": "pv_west", "interface": "west_ts", "point": 0, "export_kw": 500, "filed_by": "farm_owner"})
    offers.append({"resource": "pv_west", "party": "farm_owner", "segments": [[60, 500]]})
    if big:
        ders.append(_chp("chp_7", "south_ts"))
        offers.append({"resource": "chp_7", "party": "farm_owner", "segments": [[50, 1500]]})
    return {
        "name": f"{model}-day-with-outage",
        "start": "2026-06-01T00:00:00Z",
        "participants": PARTICIPANTS,
        "interfaces": [_interface("south_ts", model), _interface("west_ts", "total_tso")],
        "ders": ders,
        "offers": offers,
        "markets": {
            "day_ahead": {"from": "2026-06-01T00:00:00Z", "to": "2026-06-02T00:00:00Z"},
            "real_time": {"from": "2026-06-01T11:40:00Z", "to": "2026-06-01T12:41:00Z", "every_min": 10},
            "requirements": {"day_ahead": {"energy_kw": requirement_kw}, "real_time": {"energy_kw": requirement_kw}},
        },
        "load": [{"interface": "south_ts", "load_kw": 900}, {"interface": "west_ts", "load_kw": 700}],
        "outages": [_cable_fault("south_ts")],
    }


DAY_BATTERY_KWH = 12_000
"""``province_day``'s batteries hold enough for a whole day at 400 kW (9,600 kWh out, about 10,100 kWh drawn at
the default 0.9 round-trip efficiency), so that the day shows the outage and not the stored energy."""

MODELS = ("total_tso", "alt1_minimal_dso", "alt2_hybrid_dso", "total_dso")
SHORT = {"total_tso": "tso", "alt1_minimal_dso": "alt1", "alt2_hybrid_dso": "alt2", "total_dso": "dso"}


def province_day() -> dict[str, Any]:
    """One interface per coordination model (``tso_ts``, ``alt1_ts``, ``alt2_ts``, ``dso_ts``), each on the same LV
    grid with the same DERs named after it (``battery_alt1``: 400 kW, ``DAY_BATTERY_KWH`` storage at Bus 2;
    ``pv5_alt1``: 300 kW PV at Bus 5 filed by the aggregator; ``pv6_alt1``: 250 kW PV at Bus 6) and the same
    cable fault (Line 12 open 12:00-12:30, Bus 2 dark); ``chp_alt2`` (1,500 kW CHP at Bus 7, above the hybrid
    model's threshold) offers 300 kW at 25 CAD/MWh. The whole day: 24 day-ahead hours and all 288 real-time
    intervals; the TSO wants 2,000 kW throughout."""
    faces = {f"{SHORT[m]}_ts": m for m in MODELS}
    ders: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    for face in faces:
        tag = face.removesuffix("_ts")
        more_ders, more_offers = _feeder(face, f"battery_{tag}", f"pv5_{tag}", f"pv6_{tag}", DAY_BATTERY_KWH)
        ders += more_ders
        offers += more_offers
    ders.append(_chp("chp_alt2", "alt2_ts"))
    offers.append({"resource": "chp_alt2", "party": "farm_owner", "segments": [[25, 300]]})
    day = {"from": "2026-06-01T00:00:00Z", "to": "2026-06-02T00:00:00Z"}
    return {
        "name": "four-models-day-with-outages",
        "start": "2026-06-01T00:00:00Z",
        "participants": PARTICIPANTS,
        "interfaces": [_interface(face, model) for face, model in faces.items()],
        "ders": ders,
        "offers": offers,
        "markets": {
            "day_ahead": day,
            "real_time": day,
            "requirements": {"day_ahead": {"energy_kw": 2000}, "real_time": {"energy_kw": 2000}},
        },
        "load": [{"interface": face, "load_kw": 900} for face in faces],
        "outages": [_cable_fault(face) for face in faces],
    }
