"""A thin wrapper around highspy for column-wise LPs built from numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
from scipy import sparse

from gridbridge.engines.clearing.types import FloatArray


@dataclass(frozen=True)
class LpSolution:
    """Primal values, row duals, column duals (reduced costs) and the objective of a solved LP."""

    status: str
    x: FloatArray
    row_dual: FloatArray
    col_dual: FloatArray
    objective: float
    iterations: int


class LpSolver:
    """One HiGHS instance holding one LP: load it, solve it, change bounds and costs, solve again warm."""

    def __init__(self, *, time_limit_s: float | None = None, solver: str = "simplex", presolve: str = "off") -> None:
        """Silent, single-threaded, deterministic. ``presolve`` is off by default: on these LPs (thousands of
        parallel segment columns in few rows) HiGHS's presolve takes seconds where the solve takes
        milliseconds."""
        self._h: Any = highspy.Highs()  # type: ignore[no-untyped-call]
        self._h.silent()
        self._h.setOptionValue("solver", solver)
        self._h.setOptionValue("presolve", presolve)
        self._h.setOptionValue("threads", 1)
        self._h.setOptionValue("random_seed", 0)
        if time_limit_s is not None:
            self._h.setOptionValue("time_limit", float(time_limit_s))

    def load(
        self,
        cost: FloatArray,
        col_lower: FloatArray,
        col_upper: FloatArray,
        matrix: sparse.csc_array,
        row_lower: FloatArray,
        row_upper: FloatArray,
    ) -> None:
        """Pass the LP ``min cost.x  s.t. row_lower <= A x <= row_upper, col_lower <= x <= col_upper``."""
        lp = highspy.HighsLp()
        n_rows, n_cols = matrix.shape
        lp.num_col_ = int(n_cols)
        lp.num_row_ = int(n_rows)
        inf = highspy.kHighsInf
        lp.col_cost_ = np.ascontiguousarray(cost, dtype=np.float64)
        lp.col_lower_ = np.ascontiguousarray(np.where(np.isinf(col_lower), -inf, col_lower), dtype=np.float64)
        lp.col_upper_ = np.ascontiguousarray(np.where(np.isinf(col_upper), inf, col_upper), dtype=np.float64)
        lp.row_lower_ = np.ascontiguousarray(np.where(np.isneginf(row_lower), -inf, row_lower), dtype=np.float64)
        lp.row_upper_ = np.ascontiguousarray(np.where(np.isposinf(row_upper), inf, row_upper), dtype=np.float64)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = int(n_cols)
        lp.a_matrix_.num_row_ = int(n_rows)
        lp.a_matrix_.start_ = np.ascontiguousarray(matrix.indptr, dtype=np.int32)
        lp.a_matrix_.index_ = np.ascontiguousarray(matrix.indices, dtype=np.int32)
        lp.a_matrix_.value_ = np.ascontiguousarray(matrix.data, dtype=np.float64)
        self._h.passModel(lp)

    def solve(self) -> LpSolution:
        """Run HiGHS and return the solution; ``status`` is optimal, infeasible, time_limit or other."""
        self._h.run()
        status = self._h.getModelStatus()
        ms = highspy.HighsModelStatus
        if status == ms.kOptimal:
            name = "optimal"
        elif status in (ms.kInfeasible, ms.kUnboundedOrInfeasible):
            name = "infeasible"
        elif status == ms.kTimeLimit:
            name = "time_limit"
        else:
            name = f"other: {self._h.modelStatusToString(status)}"
        sol = self._h.getSolution()
        info = self._h.getInfo()
        return LpSolution(
            status=name,
            x=np.asarray(sol.col_value, dtype=np.float64),
            row_dual=np.asarray(sol.row_dual, dtype=np.float64),
            col_dual=np.asarray(sol.col_dual, dtype=np.float64),
            objective=float(info.objective_function_value),
            iterations=int(info.simplex_iteration_count),
        )

    def change(
        self,
        *,
        cost: FloatArray | None = None,
        col_lower: FloatArray | None = None,
        col_upper: FloatArray | None = None,
        row_lower: FloatArray | None = None,
        row_upper: FloatArray | None = None,
    ) -> None:
        """Change costs and bounds in place (the next ``solve`` starts from the current basis)."""
        inf = highspy.kHighsInf
        if cost is not None:
            idx = np.arange(cost.size, dtype=np.int32)
            self._h.changeColsCost(cost.size, idx, np.ascontiguousarray(cost, dtype=np.float64))
        if col_lower is not None and col_upper is not None:
            idx = np.arange(col_lower.size, dtype=np.int32)
            self._h.changeColsBounds(
                col_lower.size,
                idx,
                np.ascontiguousarray(np.where(np.isinf(col_lower), -inf, col_lower), dtype=np.float64),
                np.ascontiguousarray(np.where(np.isinf(col_upper), inf, col_upper), dtype=np.float64),
            )
        if row_lower is not None and row_upper is not None:
            idx = np.arange(row_lower.size, dtype=np.int32)
            self._h.changeRowsBounds(
                row_lower.size,
                idx,
                np.ascontiguousarray(np.where(np.isneginf(row_lower), -inf, row_lower), dtype=np.float64),
                np.ascontiguousarray(np.where(np.isposinf(row_upper), inf, row_upper), dtype=np.float64),
            )
