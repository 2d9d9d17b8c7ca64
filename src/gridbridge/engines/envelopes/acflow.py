"""AC power flow for many snapshots at once on one bus admittance matrix.

The network is given by its bus admittance matrix ``Y`` (as pandapower builds it: lines as pi models,
transformers with taps, phase shift and magnetising branch, shunts) and its slack buses with fixed complex
voltage. All other buses are PQ buses with constant-power injections ``S`` (one column per snapshot).
:class:`BatchedAcSolver` solves all columns together with the Z-bus fixed-point iteration

    Y_LL V_L^(k+1) = conj(S_L / V_L^(k)) - Y_LS V_S,

which converges in a handful of iterations on distribution networks. When the non-zero pattern of ``Y``
is a tree (a radially operated network), ``Y_LL`` is factorised without fill by eliminating the tree from
the leaves up, level by level, so one solve costs O(n T) numpy work; otherwise a sparse LU (SuperLU) is
used. A column converges when its largest voltage update is below ``tol_pu``; the final power mismatch
``|V conj(Y V) - S|`` of each column is reported. Columns whose voltages leave (0.3, 2.0) pu or turn
non-finite are stopped and reported as not converged (voltage collapse).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order
from scipy.sparse.linalg import splu

from gridbridge.engines.envelopes._types import BoolArray, ComplexArray, FloatArray, IntArray


@dataclass(frozen=True, eq=False)
class AcBatchSolution:
    """Bus voltages ``v`` (n, T), per-column convergence, the iterations used and the final mismatch."""

    v: ComplexArray
    converged: BoolArray
    iterations: int
    max_mismatch_pu: FloatArray


@dataclass(frozen=True, eq=False)
class _TreeLevel:
    lo: int
    hi: int
    starts: IntArray
    group_parent: IntArray
    parent_is_slack: BoolArray


class _TreeFactor:
    """Fill-free elimination of a tree-patterned matrix with known values at the slack (root) nodes."""

    def __init__(self, y: sparse.csr_matrix, slack: IntArray, order: IntArray, pred: IntArray) -> None:
        n = y.shape[0]
        depth = np.full(n, -1, dtype=np.int64)
        parent = np.full(n, -1, dtype=np.int64)
        parent[order] = pred[order]
        parent[parent == n] = -1
        parent[parent < 0] = -1
        depth[slack] = 0
        for k in order:
            p = parent[k]
            if p >= 0:
                depth[k] = depth[p] + 1
        # new numbering: by depth, then parent position
        new_of = np.full(n, -1, dtype=np.int64)
        roots = np.sort(slack)
        new_of[roots] = np.arange(len(roots))
        perm = [roots]
        count = len(roots)
        max_depth = int(depth.max()) if n else 0
        levels: list[_TreeLevel] = []
        is_slack_old = np.zeros(n, dtype=np.bool_)
        is_slack_old[slack] = True
        by_depth = np.argsort(depth, kind="stable")
        bounds = np.searchsorted(depth[by_depth], np.arange(max_depth + 2))
        for d in range(1, max_depth + 1):
            nodes = by_depth[bounds[d] : bounds[d + 1]]
            nodes = nodes[np.lexsort((nodes, new_of[parent[nodes]]))]
            new_of[nodes] = np.arange(count, count + len(nodes))
            par_new = new_of[parent[nodes]]
            change = np.flatnonzero(np.diff(par_new)) + 1
            starts = np.concatenate([[0], change]).astype(np.int64)
            gp = par_new[starts]
            levels.append(_TreeLevel(count, count + len(nodes), starts, gp, is_slack_old[parent[nodes][starts]]))
            perm.append(nodes)
            count += len(nodes)
        self.perm = np.concatenate(perm)  # new -> old
        self.n = n
        self.n_slack = len(roots)
        self.levels = tuple(levels)
        old = self.perm
        par_old = parent[old]
        nonroot = par_old >= 0
        self.parent = np.where(nonroot, new_of[np.maximum(par_old, 0)], -1)
        yc = y.tocsr()
        diag = np.asarray(yc.diagonal(), dtype=np.complex128)[old]
        a_pc = np.zeros(n, dtype=np.complex128)
        a_cp = np.zeros(n, dtype=np.complex128)
        a_pc[nonroot] = np.asarray(yc[par_old[nonroot], old[nonroot]]).ravel()
        a_cp[nonroot] = np.asarray(yc[old[nonroot], par_old[nonroot]]).ravel()
        pivot = diag.copy()
        for lv in reversed(self.levels):
            sl = slice(lv.lo, lv.hi)
            upd = np.add.reduceat(a_pc[sl] * a_cp[sl] / pivot[sl], lv.starts)
            keep = ~lv.parent_is_slack
            pivot[lv.group_parent[keep]] -= upd[keep]
        self.d = pivot
        self.a_cp = a_cp
        self.coef_up = np.zeros(n, dtype=np.complex128)
        self.coef_up[nonroot] = a_pc[nonroot] / pivot[nonroot]

    def solve(self, b_new: ComplexArray, x_slack: ComplexArray) -> ComplexArray:
        """Solve for the non-slack unknowns given right-hand sides ``b_new`` (n, T) in the new numbering
        (slack rows ignored) and slack values ``x_slack`` (n_slack, T); returns x (n, T) new numbering."""
        b = b_new.copy()
        for lv in reversed(self.levels):
            sl = slice(lv.lo, lv.hi)
            s = np.add.reduceat(self.coef_up[sl, None] * b[sl], lv.starts, axis=0)
            keep = ~lv.parent_is_slack
            b[lv.group_parent[keep]] -= s[keep]
        x = np.empty_like(b)
        x[: self.n_slack] = x_slack
        for lv in self.levels:
            sl = slice(lv.lo, lv.hi)
            x[sl] = (b[sl] - self.a_cp[sl, None] * x[self.parent[sl]]) / self.d[sl, None]
        return x


class BatchedAcSolver:
    """Z-bus fixed-point AC power flow for many injection snapshots (see the module docstring)."""

    def __init__(self, ybus: sparse.spmatrix, slack: IntArray) -> None:
        y = sparse.csr_matrix(ybus, dtype=np.complex128)
        n = y.shape[0]
        if y.shape != (n, n):
            raise ValueError("ybus must be square")
        slack = np.unique(np.asarray(slack, dtype=np.int64))
        if len(slack) == 0 or slack.min() < 0 or slack.max() >= n:
            raise ValueError("slack must name at least one bus inside the matrix")
        self.y = y
        self.n = n
        self.slack = slack
        is_slack = np.zeros(n, dtype=np.bool_)
        is_slack[slack] = True
        self.is_slack = is_slack
        self.free = np.flatnonzero(~is_slack)
        pattern = (y != 0).astype(np.int8).tocoo()
        off = (pattern.row != pattern.col) & ~(is_slack[pattern.row] & is_slack[pattern.col])
        r, c = pattern.row[off], pattern.col[off]
        lo, hi = np.minimum(r, c), np.maximum(r, c)
        edges = np.unique(lo * n + hi)
        g = sparse.coo_matrix(
            (
                np.ones(len(edges) + len(slack)),
                (np.concatenate([edges // n, np.full(len(slack), n)]), np.concatenate([edges % n, slack])),
            ),
            shape=(n + 1, n + 1),
        ).tocsr()
        order, pred = breadth_first_order(g, n, directed=False, return_predecessors=True)
        order = np.asarray(order[1:], dtype=np.int64)
        self.tree = len(order) == n and len(edges) == n - len(slack)
        self._tree: _TreeFactor | None = None
        self._lu = None
        if self.tree:
            self._tree = _TreeFactor(y, slack, order, np.asarray(pred, dtype=np.int64))
        else:
            self._lu = splu(sparse.csc_matrix(y[self.free][:, self.free]))
            self._y_ls = y[self.free][:, slack]

    def solve(
        self,
        s_pu: ComplexArray,
        v_slack: ComplexArray,
        v_start: ComplexArray | None = None,
        *,
        tol_pu: float = 1e-9,
        max_iter: int = 100,
    ) -> AcBatchSolution:
        """Solve all columns of ``s_pu`` (n, T; injections, generation positive, per unit).

        ``v_slack`` is (n_slack,) or (n_slack, T) in the order of the sorted slack indices; ``v_start``
        (n, T) is the initial guess (flat start at the slack voltage if None). Columns that collapse come
        back as NaN with ``converged`` False.
        """
        s = np.asarray(s_pu, dtype=np.complex128)
        if s.ndim != 2 or s.shape[0] != self.n:
            raise ValueError(f"s_pu must have shape ({self.n}, T)")
        t = s.shape[1]
        vs = np.asarray(v_slack, dtype=np.complex128)
        if vs.ndim == 1:
            vs = np.repeat(vs[:, None], t, axis=1)
        if vs.shape != (len(self.slack), t):
            raise ValueError("v_slack must have one value per slack bus (and per column)")
        if self._tree is not None:
            order = self._tree.perm
            free = np.arange(len(self.slack), self.n)
        else:
            order = np.concatenate([self.slack, self.free])
            free = np.arange(len(self.slack), self.n)
        s_o = s[order]
        if v_start is None:
            v = np.empty((self.n, t), dtype=np.complex128)
            v[:] = vs.mean(axis=0)[None, :]
        else:
            v = np.array(np.asarray(v_start, dtype=np.complex128)[order], copy=True)
        v[: len(self.slack)] = vs
        converged = np.zeros(t, dtype=np.bool_)
        failed = np.zeros(t, dtype=np.bool_)
        iterations = 0
        with np.errstate(all="ignore"):
            for it in range(1, max_iter + 1):
                iterations = it
                cur = np.conj(s_o / v)
                vn = self._solve_ordered(cur, vs)
                diff = vn[free] - v[free]
                step = np.sqrt(np.max(diff.real**2 + diff.imag**2, axis=0))
                mag = np.abs(vn[free])
                bad = ~np.isfinite(step) | (mag.max(axis=0) > 2.0) | (mag.min(axis=0) < 0.3)
                failed |= bad
                converged |= (step < tol_pu) & ~failed
                v = vn
                if (converged | failed).all():
                    break
                if failed.any():
                    v[:, failed] = vs.mean(axis=0)[None, failed]
        v_out = np.empty_like(v)
        v_out[order] = v
        v_out[:, failed] = np.nan
        with np.errstate(all="ignore"):
            mismatch = np.abs(v_out * np.conj(self.y @ v_out) - s)
        mismatch[self.slack] = 0.0
        return AcBatchSolution(v_out, converged & ~failed, iterations, np.max(mismatch, axis=0))

    def _solve_ordered(self, currents: ComplexArray, v_slack: ComplexArray) -> ComplexArray:
        """Voltages (in solver order: slack first) for currents injected at the free buses (solver order)."""
        if self._tree is not None:
            return self._tree.solve(currents, v_slack)
        assert self._lu is not None
        k = len(self.slack)
        rhs = currents[k:] - self._y_ls @ v_slack
        out = np.empty_like(currents)
        out[:k] = v_slack
        out[k:] = self._lu.solve(rhs)
        return out
