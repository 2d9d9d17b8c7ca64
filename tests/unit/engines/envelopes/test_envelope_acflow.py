"""The batched AC power flow against a closed-form two-bus solution, power balance on a tree and a mesh,
column independence, and voltage collapse reported as non-convergence."""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse

from gridbridge.engines.envelopes import BatchedAcSolver


def ybus(n: int, lines: list[tuple[int, int, complex]], shunt: dict[int, complex] | None = None) -> sparse.csr_matrix:
    """Bus admittance matrix of series impedances (and optional shunt admittances)."""
    y = np.zeros((n, n), dtype=complex)
    for a, b, z in lines:
        yl = 1 / z
        y[a, a] += yl
        y[b, b] += yl
        y[a, b] -= yl
        y[b, a] -= yl
    for k, ys in (shunt or {}).items():
        y[k, k] += ys
    return sparse.csr_matrix(y)


def test_two_bus_closed_form() -> None:
    r, x, p, q = 0.01, 0.02, 0.5, 0.2  # load p + jq at bus 1, slack at 1.0 pu
    solver = BatchedAcSolver(ybus(2, [(0, 1, complex(r, x))]), np.array([0]))
    sol = solver.solve(np.array([[0.0], [-(p + 1j * q)]]), np.array([1.0 + 0j]))
    half = 0.5 - (r * p + x * q)
    v2 = math.sqrt(half + math.sqrt(half**2 - (r * r + x * x) * (p * p + q * q)))
    assert sol.converged.all()
    assert abs(abs(sol.v[1, 0]) - v2) < 1e-9
    assert solver.tree


def test_tree_columns_balance_power_and_are_independent() -> None:
    lines = [(0, 1, 0.01 + 0.03j), (1, 2, 0.02 + 0.02j), (2, 3, 0.02 + 0.01j), (1, 4, 0.03 + 0.02j)]
    y = ybus(5, lines, shunt={2: 0.001j})
    solver = BatchedAcSolver(y, np.array([0]))
    rng = np.random.default_rng(3)
    s = np.zeros((5, 6), dtype=complex)
    s[1:] = rng.uniform(-0.4, 0.4, size=(4, 6)) + 1j * rng.uniform(-0.2, 0.2, size=(4, 6))
    sol = solver.solve(s, np.array([1.02 + 0j]))
    assert sol.converged.all()
    mismatch = sol.v * np.conj(y @ sol.v) - s
    assert np.abs(mismatch[1:]).max() < 1e-8
    one = solver.solve(s[:, 2:3], np.array([1.02 + 0j]))
    np.testing.assert_allclose(one.v[:, 0], sol.v[:, 2], atol=1e-9)


def test_meshed_network_uses_the_general_solver() -> None:
    lines = [(0, 1, 0.02 + 0.04j), (1, 2, 0.02 + 0.04j), (2, 0, 0.02 + 0.04j), (2, 3, 0.01 + 0.02j)]
    y = ybus(4, lines)
    solver = BatchedAcSolver(y, np.array([0]))
    assert not solver.tree
    s = np.array([[0], [-0.3 - 0.1j], [0.2 + 0j], [-0.5 - 0.2j]], dtype=complex)
    sol = solver.solve(s, np.array([1.0 + 0j]))
    assert sol.converged.all()
    assert np.abs((sol.v * np.conj(y @ sol.v) - s)[1:]).max() < 1e-8


def test_voltage_collapse_is_not_converged() -> None:
    solver = BatchedAcSolver(ybus(2, [(0, 1, 0.1 + 0.2j)]), np.array([0]))
    s = np.array([[0.0, 0.0], [-0.2, -50.0]], dtype=complex)  # the second load is far beyond the nose point
    sol = solver.solve(s, np.array([1.0 + 0j]))
    assert list(sol.converged) == [True, False]
    assert np.isnan(sol.v[1, 1])
    assert np.isfinite(sol.v[1, 0])
