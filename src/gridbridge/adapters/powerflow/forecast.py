"""Forecast sources for the envelope service: SimBench profiles, or a network's stored values.

:class:`SimbenchProfileForecast` turns SimBench's relative profiles (15-minute values over the year 2016)
into per-bus net injections for the requested intervals:

- each interval start (UTC) is mapped to the same month, day and time of day in the profile year (SimBench's
  time stamps are read as UTC), wrapping round the year end;
- 15-minute intervals take the profile value of their quarter hour; 5-minute intervals interpolate
  linearly between the surrounding quarter-hour values; 30-minute intervals average their two quarter hours;
- only the profile rows needed are converted to absolute values (``simbench.get_absolute_values`` on a
  network whose profiles are sliced to those rows), then summed per bus (loads and storages negative,
  static generators positive, times each element's ``scaling``; out-of-service elements count zero). Static
  generators keep their stored reactive power; elements without a profile keep their stored values.

:class:`StoredValuesForecast` repeats the network's stored load and generation for every interval (the CLI's
``--profiles none`` uses it for a single interval).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from scipy import sparse

from gridbridge.adapters.powerflow.network import PandapowerEnvelopeNetwork
from gridbridge.domain.envelopes import FORECAST_INCOMPLETE, validate_interval_minutes
from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.envelopes._types import FloatArray, IntArray
from gridbridge.services.envelopes_ports import BusForecast

PROFILE_YEAR = 2016
PROFILE_STEP_MINUTES = 15


def profile_minute_of_year(when: datetime) -> int:
    """Minutes since 1 January 00:00 of the profile year for the same month, day and time as ``when`` (UTC)."""
    w = when.astimezone(UTC)
    mapped = datetime(PROFILE_YEAR, w.month, w.day, w.hour, w.minute, tzinfo=UTC)
    return int((mapped - datetime(PROFILE_YEAR, 1, 1, tzinfo=UTC)).total_seconds() // 60)


def profile_weights(
    interval_starts: Sequence[datetime], interval_minutes: int, n_rows: int
) -> tuple[IntArray, sparse.csr_matrix]:
    """Profile rows needed and a (T, rows) weight matrix giving each interval's value from them."""
    validate_interval_minutes(interval_minutes)
    entries: list[tuple[int, int, float]] = []
    for k, start in enumerate(interval_starts):
        minute = profile_minute_of_year(start)
        row = (minute // PROFILE_STEP_MINUTES) % n_rows
        nxt = (row + 1) % n_rows
        if interval_minutes == 15:
            entries.append((k, row, 1.0))
        elif interval_minutes == 30:
            entries += [(k, row, 0.5), (k, nxt, 0.5)]
        else:
            frac = (minute % PROFILE_STEP_MINUTES) / PROFILE_STEP_MINUTES
            entries += [(k, row, 1.0 - frac), (k, nxt, frac)]
    rows_needed = np.unique(np.array([e[1] for e in entries], dtype=np.int64))
    col_of = {int(r): i for i, r in enumerate(rows_needed)}
    w = sparse.csr_matrix(
        ([e[2] for e in entries], ([e[0] for e in entries], [col_of[e[1]] for e in entries])),
        shape=(len(interval_starts), len(rows_needed)),
    )
    return rows_needed, w


class SimbenchProfileForecast:
    """Per-bus injections from the SimBench profiles stored in the network (see the module docstring)."""

    def __init__(self, network: PandapowerEnvelopeNetwork) -> None:
        net = network.net
        if "profiles" not in net or not isinstance(net.profiles, dict) or "load" not in net.profiles:
            raise ValidationFailed(
                "the network has no SimBench profiles; use the stored values instead (--profiles none)",
                field="profiles",
                code=FORECAST_INCOMPLETE,
            )
        self._network = network

    @property
    def description(self) -> str:
        """What the forecast is."""
        return f"SimBench profiles of {self._network.name} (profile year {PROFILE_YEAR}, 15-minute values)"

    def bus_forecast(self, interval_starts: Sequence[datetime], interval_minutes: int) -> BusForecast:
        """Per-bus net injections for the intervals (see the module docstring)."""
        net = self._network.net
        n_rows = len(net.profiles["load"])
        rows, weights = profile_weights(interval_starts, interval_minutes, n_rows)
        sliced = copy.copy(net)
        sliced.profiles = {
            key: (df.iloc[rows].reset_index(drop=True) if len(df) else df) for key, df in net.profiles.items()
        }
        import simbench

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            absolute = simbench.get_absolute_values(sliced, profiles_instead_of_study_cases=True)

        def values(table: str, column: str) -> FloatArray:
            df = net[table]
            stored = np.asarray(df[column].astype(float).fillna(0.0).to_numpy(), dtype=np.float64)
            out = np.repeat(stored[None, :], len(rows), axis=0)
            got = absolute.get((table, column))
            if isinstance(got, pd.DataFrame) and got.shape[0] == len(rows) and len(got.columns):
                cols = [c for c in got.columns if c in df.index]
                pos = df.index.get_indexer(cols)
                vals = got[cols].to_numpy(dtype=float)
                filled = np.where(np.isnan(vals), out[:, pos], vals)
                out[:, pos] = filled
            return np.asarray(weights @ out, dtype=np.float64)

        mats = self._network.element_injection_matrices()
        p = (mats["sgen"] @ values("sgen", "p_mw").T).T - (mats["load"] @ values("load", "p_mw").T).T
        p -= (mats["storage"] @ values("storage", "p_mw").T).T
        q_sgen = np.asarray(net.sgen["q_mvar"].astype(float).fillna(0.0).to_numpy(), dtype=np.float64)
        q_stor = np.asarray(net.storage["q_mvar"].astype(float).fillna(0.0).to_numpy(), dtype=np.float64)
        q = -(mats["load"] @ values("load", "q_mvar").T).T
        q += (mats["sgen"] @ q_sgen)[None, :] - (mats["storage"] @ q_stor)[None, :]
        return BusForecast(
            bus_names=self._network.bus_names,
            interval_starts=tuple(s.astimezone(UTC) for s in interval_starts),
            interval_minutes=interval_minutes,
            p_inj_mw=np.asarray(p, dtype=np.float64),
            q_inj_mvar=np.asarray(q, dtype=np.float64),
            source="simbench",
        )


class StoredValuesForecast:
    """The network's stored load and generation, the same for every interval."""

    def __init__(self, network: PandapowerEnvelopeNetwork) -> None:
        self._network = network

    @property
    def description(self) -> str:
        """What the forecast is."""
        return f"stored load and generation values of {self._network.name}"

    def bus_forecast(self, interval_starts: Sequence[datetime], interval_minutes: int) -> BusForecast:
        """The stored per-bus injections repeated for each interval."""
        validate_interval_minutes(interval_minutes)
        p, q = self._network.stored_injections()
        t = len(interval_starts)
        return BusForecast(
            bus_names=self._network.bus_names,
            interval_starts=tuple(s.astimezone(UTC) for s in interval_starts),
            interval_minutes=interval_minutes,
            p_inj_mw=np.repeat(p[None, :], t, axis=0),
            q_inj_mvar=np.repeat(q[None, :], t, axis=0),
            source="stored",
        )
