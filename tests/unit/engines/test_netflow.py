"""Net flow at T-D interfaces: forecast and reverse-flow detection."""

from __future__ import annotations

import numpy as np
import pytest

from gridbridge.domain.errors import ValidationFailed
from gridbridge.engines.netflow import (
    detect_limit_violations,
    detect_reverse_flow,
    net_load_forecast,
    sum_to_interfaces,
)


def test_sum_to_interfaces_for_one_and_many_intervals() -> None:
    der_if = np.array([0, 1, 1, -1, 2])
    p = np.array([1.0, 2.0, 3.0, 100.0, 4.0])
    np.testing.assert_allclose(sum_to_interfaces(p, der_if, 3), [1.0, 5.0, 4.0])
    p2 = np.vstack([p, 2 * p])
    np.testing.assert_allclose(sum_to_interfaces(p2, der_if, 3), [[1.0, 5.0, 4.0], [2.0, 10.0, 8.0]])


def test_net_load_and_reverse_flow() -> None:
    # Two intervals, three interfaces. Midday PV and a dispatch push interface 1 into export in interval 1.
    load = np.array([[500.0, 300.0, 800.0], [500.0, 300.0, 800.0]])
    pv = np.array([[100.0, 200.0, 0.0], [150.0, 350.0, 0.0]])
    dispatch = np.array([[0.0, 50.0, 0.0], [0.0, 50.0, 900.0]])
    net = net_load_forecast(load, pv, dispatch)
    np.testing.assert_allclose(net, [[400.0, 50.0, 800.0], [350.0, -100.0, -100.0]])
    events = detect_reverse_flow(net)
    assert events.count == 2
    assert list(zip(events.interval_index, events.interface_index, strict=True)) == [(1, 1), (1, 2)]
    np.testing.assert_allclose(events.magnitude_kw, [100.0, 100.0])
    assert list(events.interfaces()) == [1, 2]
    assert detect_reverse_flow(net, threshold_kw=150.0).count == 0
    one = detect_reverse_flow(net[1])
    assert list(one.interval_index) == [0, 0]


def test_limit_violations_on_both_sides() -> None:
    net = np.array([[1200.0, -600.0, 100.0]])
    events = detect_limit_violations(net, np.array([1000.0, 1000.0, 1000.0]), np.array([500.0, 500.0, 500.0]))
    assert list(events.interface_index) == [0, 1]
    np.testing.assert_allclose(events.magnitude_kw, [200.0, 100.0])


def test_bad_shapes_and_values_are_rejected() -> None:
    with pytest.raises(ValidationFailed) as info:
        net_load_forecast(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2)))
    assert info.value.field == "dispatch_kw"
    with pytest.raises(ValidationFailed):
        net_load_forecast(np.array([np.nan]), np.zeros(1), np.zeros(1))
    with pytest.raises(ValidationFailed):
        sum_to_interfaces(np.zeros(3), np.array([0, 1]), 2)
    with pytest.raises(ValidationFailed):
        detect_reverse_flow(np.zeros(2), threshold_kw=-1.0)
