"""The envelope backend for stored network models: pandapower network and forecast for a model from the store.

:class:`PandapowerEnvelopeBackend` implements :class:`~gridbridge.services.envelope_store_ports.EnvelopeBackend`:

- the network: ``network_to_pandapower(model)`` wrapped in :class:`PandapowerEnvelopeNetwork` (derates are
  already applied to the model by the service, through the branches' ``df``);
- the forecast: for a model imported from ``simbench:CODE`` (``networks.source``), the SimBench profiles of
  that grid (loaded once per process and code, then attached to the network) through
  :class:`SimbenchProfileForecast`; for any other source the stored values, the same for every interval
  (:class:`StoredValuesForecast`).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from functools import cache
from typing import Any

import pandapower as pp

from gridbridge.adapters.network_io import SIMBENCH_PREFIX, load_pandapower_source, network_to_pandapower
from gridbridge.adapters.powerflow.forecast import SimbenchProfileForecast, StoredValuesForecast
from gridbridge.adapters.powerflow.network import AcBackend, PandapowerEnvelopeNetwork
from gridbridge.domain.network import NetworkModel
from gridbridge.services.envelope_store_ports import PreparedNetwork
from gridbridge.services.envelopes_ports import ForecastSource


@cache
def simbench_profiles(code: str) -> dict[str, Any]:
    """The relative profiles SimBench ships with grid ``code`` (loaded once per process)."""
    net = load_pandapower_source(f"{SIMBENCH_PREFIX}{code}")
    profiles = getattr(net, "profiles", None)
    return dict(profiles) if isinstance(profiles, dict) else {}


class PandapowerEnvelopeBackend:
    """Stored model -> pandapower envelope network and forecast (see the module docstring).

    Building a pandapower network from a model is the slow part of a small run, so the last ``cache_size``
    built networks are kept (keyed by the model's value and its source). Each run still gets its own copy
    (:class:`PandapowerEnvelopeNetwork` copies the network it is given), so concurrent runs share nothing.
    """

    def __init__(self, ac_backend: AcBackend = "batched", *, cache_size: int = 4) -> None:
        self.ac_backend: AcBackend = ac_backend
        self.cache_size = cache_size
        self._nets: OrderedDict[tuple[NetworkModel, str], pp.pandapowerNet] = OrderedDict()
        self._lock = threading.Lock()

    def _template(self, model: NetworkModel, source: str) -> pp.pandapowerNet:
        key = (model, source)
        with self._lock:
            if key in self._nets:
                self._nets.move_to_end(key)
                return self._nets[key]
        net = network_to_pandapower(model)
        for table in ("gen", "storage"):  # SimBench's converter looks for a profile column in every table
            if "profile" not in net[table].columns:
                net[table]["profile"] = None
        if source.startswith(SIMBENCH_PREFIX):
            net.profiles = copy.copy(simbench_profiles(source[len(SIMBENCH_PREFIX) :].strip()))
        with self._lock:
            self._nets[key] = net
            while len(self._nets) > self.cache_size:
                self._nets.popitem(last=False)
        return net

    def prepare(self, model: NetworkModel, *, source: str) -> PreparedNetwork:
        """The engine's network of ``model`` and the forecast that fits ``source``."""
        net = self._template(model, source)
        network = PandapowerEnvelopeNetwork(net, name=f"{model.name} ({source})", ac_backend=self.ac_backend)
        forecast: ForecastSource
        if source.startswith(SIMBENCH_PREFIX):
            forecast = SimbenchProfileForecast(network)
        else:
            forecast = StoredValuesForecast(network)
        return PreparedNetwork(network=network, forecast=forecast)
