"""Ports of the envelope service: what it needs from a network model, a power flow and a forecast.

The service never imports pandapower or a store. It works through:

- :class:`EnvelopeNetwork`: a network with its buses, connection points, switching description
  (:class:`~gridbridge.engines.envelopes.TopologyInputs`), branch data, and an AC power flow for many
  snapshots of per-bus injections (:meth:`EnvelopeNetwork.run_ac`). ``gridbridge.adapters.powerflow``
  implements it on pandapower.
- :class:`ForecastSource`: per-bus net injections for a list of interval starts (SimBench profiles, the
  network's stored values, or later the store's forecasts).

Data crossing the ports is plain arrays in the network's bus and branch order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gridbridge.engines.envelopes import BranchParameters, TopologyInputs
from gridbridge.engines.envelopes._types import BoolArray, FloatArray, IntArray

#: Progress callback: ``(stage, completed, total)``.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, eq=False)
class BusForecast:
    """Net injections per interval and bus (generation positive): ``p_inj_mw``/``q_inj_mvar`` (T, n_bus)
    for the buses ``bus_names`` and the intervals starting at ``interval_starts`` (UTC)."""

    bus_names: tuple[str, ...]
    interval_starts: tuple[datetime, ...]
    interval_minutes: int
    p_inj_mw: FloatArray
    q_inj_mvar: FloatArray
    source: str = "forecast"


@dataclass(frozen=True, eq=False)
class AcFlowResult:
    """AC power-flow results for T snapshots, in the network's bus and branch order.

    ``vm_pu`` (T, n_bus) is NaN at de-energised buses; branch arrays (T, n_branch) hold the power
    entering the branch at its from-end (``p_from_mw``, ``q_from_mvar``) and to-end, and the loading in
    percent of the rating (NaN for open branches); ``p_tdi_mw`` (T,) is the power drawn from the
    transmission system; ``converged`` (T,) flags snapshots whose power flow converged.
    """

    vm_pu: FloatArray
    p_from_mw: FloatArray
    q_from_mvar: FloatArray
    p_to_mw: FloatArray
    q_to_mvar: FloatArray
    loading_pct: FloatArray
    p_tdi_mw: FloatArray
    converged: BoolArray
    backend: str = "ac"

    @property
    def intervals(self) -> int:
        """Number of snapshots."""
        return int(self.vm_pu.shape[0])


class EnvelopeNetwork(Protocol):
    """A network the envelope service can analyse (see the module docstring)."""

    @property
    def name(self) -> str:
        """Name of the network (for the calculation log)."""
        ...

    @property
    def bus_names(self) -> tuple[str, ...]:
        """Bus names in bus order."""
        ...

    @property
    def connection_point_buses(self) -> IntArray:
        """Bus positions of the default connection points (every bus with a load)."""
        ...

    def default_weights_kw(self) -> FloatArray:
        """Default proportional weight of each default connection point: the rating (kVA) of the
        generators and storages at its bus, or 1 where it has none."""
        ...

    def topology_inputs(self) -> TopologyInputs:
        """Buses, branches, switches and slack buses as the topology engine takes them."""
        ...

    def branch_parameters(self) -> BranchParameters:
        """Per-branch impedance (pu on 1 MVA), rating (MVA) and length, in branch order."""
        ...

    def stored_injections(self) -> tuple[FloatArray, FloatArray]:
        """The network's stored per-bus net injections (MW, Mvar), one value per bus."""
        ...

    def with_switching(self, open_elements: Sequence[str], close_elements: Sequence[str]) -> EnvelopeNetwork:
        """A copy of this network with the named switches/branches opened or closed."""
        ...

    def run_ac(self, p_inj_mw: FloatArray, q_inj_mvar: FloatArray, progress: Progress | None = None) -> AcFlowResult:
        """AC power flow for each row of per-bus injections (T, n_bus)."""
        ...

    @property
    def ac_backend(self) -> str:
        """Name of the AC power-flow method (for the calculation log)."""
        ...


class ForecastSource(Protocol):
    """Per-bus net injection forecasts for a set of intervals."""

    @property
    def description(self) -> str:
        """What the forecast is (for the calculation log)."""
        ...

    def bus_forecast(self, interval_starts: Sequence[datetime], interval_minutes: int) -> BusForecast:
        """Net injections for intervals of ``interval_minutes`` starting at ``interval_starts`` (UTC)."""
        ...
