"""Scenario data for the per-model day tests: one interface under the model being tried, one SimBench LV grid.

The DERs: ``battery_2`` (400 kW storage at LV1.101 Bus 2, below the feeder "LV1.101 Line 12" that the outage
opens from 12:00 to 12:30), ``pv_5`` (300 kW PV at Bus 5, filed by the aggregator for the owner), ``pv_6``
(250 kW PV at Bus 6) and, only where ``big`` is set, ``chp_7`` (1,500 kW CHP at Bus 7: above the hybrid
model's 1,000 kW threshold). A Total TSO interface ``west_ts`` with ``pv_west`` (500 kW, the dearest) is the
TSO's other source. Day-ahead: the 24 hours of 1 June 2026; real-time: six 5-minute intervals every
10 minutes from 11:40 to 12:40 (a full 288 would be too slow for CI; ``gridbridge demo`` runs the full day).
"""

from __future__ import annotations

from typing import Any

GRID = "simbench:1-LV-rural1--0-sw"
OUTAGE_START, OUTAGE_END = "2026-06-01T12:00:00Z", "2026-06-01T12:30:00Z"


def day_scenario(model: str, *, big: bool = False, requirement_kw: float = 600.0) -> dict[str, Any]:
    """The scenario data for ``model`` at interface ``south_ts`` (see the module docstring)."""
    ders: list[dict[str, Any]] = [
        {
            "name": "battery_2",
            "interface": "south_ts",
            "point": "LV1.101 Bus 2",
            "technology": "storage",
            "export_kw": 400,
            "import_kw": 400,
            "energy_kwh": 800,
            "filed_by": "farm_owner",
        },
        {
            "name": "pv_5",
            "interface": "south_ts",
            "point": "LV1.101 Bus 5",
            "export_kw": 300,
            "filed_by": "flexco",
            "owner": "farm_owner",
        },
        {"name": "pv_6", "interface": "south_ts", "point": "LV1.101 Bus 6", "export_kw": 250, "filed_by": "farm_owner"},
        {"name": "pv_west", "interface": "west_ts", "point": 0, "export_kw": 500, "filed_by": "farm_owner"},
    ]
    offers: list[dict[str, Any]] = [
        {"resource": "battery_2", "party": "farm_owner", "segments": [[20, 400]]},
        {"resource": "pv_5", "party": "flexco", "segments": [[30, 300]]},
        {"resource": "pv_6", "party": "farm_owner", "segments": [[35, 250]]},
        {"resource": "pv_west", "party": "farm_owner", "segments": [[60, 500]]},
    ]
    if big:
        ders.append(
            {
                "name": "chp_7",
                "interface": "south_ts",
                "point": "LV1.101 Bus 7",
                "technology": "chp",
                "export_kw": 1500,
                "filed_by": "farm_owner",
            }
        )
        offers.append({"resource": "chp_7", "party": "farm_owner", "segments": [[50, 1500]]})
    return {
        "name": f"{model}-day-with-outage",
        "start": "2026-06-01T00:00:00Z",
        "participants": [
            {"name": "ieso", "role": "tso"},
            {"name": "hydro_south", "role": "dso", "dso_kind": "ldc"},
            {"name": "flexco", "role": "aggregator"},
            {"name": "farm_owner", "role": "der_owner"},
        ],
        "interfaces": [
            {
                "name": "south_ts",
                "dso": "hydro_south",
                "model": model,
                "network": GRID,
                "import_limit_kw": 4000,
                "export_limit_kw": 3000,
            },
            {
                "name": "west_ts",
                "dso": "hydro_south",
                "model": "total_tso",
                "network": GRID,
                "import_limit_kw": 4000,
                "export_limit_kw": 3000,
            },
        ],
        "ders": ders,
        "offers": offers,
        "markets": {
            "day_ahead": {"from": "2026-06-01T00:00:00Z", "to": "2026-06-02T00:00:00Z"},
            "real_time": {"from": "2026-06-01T11:40:00Z", "to": "2026-06-01T12:41:00Z", "every_min": 10},
            "requirements": {"day_ahead": {"energy_kw": requirement_kw}, "real_time": {"energy_kw": requirement_kw}},
        },
        "load": [{"interface": "south_ts", "load_kw": 900}, {"interface": "west_ts", "load_kw": 700}],
        "outages": [
            {
                "interface": "south_ts",
                "starts_at": OUTAGE_START,
                "ends_at": OUTAGE_END,
                "open": ["LV1.101 Line 12"],
                "reason": "cable fault",
            }
        ],
    }
