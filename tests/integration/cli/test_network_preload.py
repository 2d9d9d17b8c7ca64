"""The scenario and demo grid loader reads grids ahead of use in worker processes, with the same result as reading
them in turn, and leaves a bad source to fail on first use with its own error."""

from __future__ import annotations

import pytest

from gridbridge.adapters.network_io import import_network
from gridbridge.cli import scenario
from gridbridge.domain.errors import ValidationFailed

GRIDS = ("simbench:1-LV-rural1--0-sw", "simbench:1-LV-semiurb4--0-sw")


def test_preloaded_grids_equal_grids_read_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario, "_NETWORKS", {})
    scenario.preload_networks([*GRIDS, "simbench:no-such-grid"], workers=2)
    assert set(scenario._NETWORKS) == set(GRIDS)  # the bad source is not cached
    for source in GRIDS:
        assert scenario.cached_network(source) == import_network(source)
    assert scenario.cached_network(GRIDS[0], name="tdi_x").name == "tdi_x"
    with pytest.raises(ValidationFailed) as bad:
        scenario.cached_network("simbench:no-such-grid")
    assert bad.value.code == "network.unknown_simbench_code"
