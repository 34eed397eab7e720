"""Exact path-dependent Tree SHAP of a HistGradientBoosting model by table lookup.

shap's C++ Tree SHAP walks every leaf of every tree for every row: about 190 us per row
for the demo's 150-tree models, most of an optimisation run's logging time. Yet a tree
with a handful of splits cuts its input space into a small grid of cells (between
consecutive thresholds of each feature it splits on), and inside one cell every split
goes the same way, so the tree's SHAP values are constant there. ``compile_tree_shap``
computes each tree's values once per cell, when the model is loaded; explaining a row is
then one binary search per feature and one lookup per (tree, feature).

The values are the same game shap computes (``feature_perturbation="tree_path_dependent"``):
v(S) = sum over leaves of value * prod over the path's splits of [the row's way when the
split's feature is in S, else the cover share of the path's child]. Per leaf that is a
product over the leaf's distinct path features u of z_u (the row follows every split on u)
or r_u (the product of u's cover shares), whose Shapley value for feature i is

    value * (z_i - r_i) * sum over S within U - {i} of |S|! (d - |S| - 1)! / d!
                                    * prod_{u in S} z_u * prod_{u not in S, u != i} r_u

and the tree's values are the sum over its leaves. ``explain.py`` uses the tables only
after they reproduce shap's own values on the model version's reference sample, and
falls back to shap for rows with missing values and for models outside the limits here
(categorical splits, more than one tree per iteration, paths with many distinct features,
tables above ``MAX_TABLE_VALUES``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

MAX_PATH_FEATURES = 12
"""Distinct features on one root-to-leaf path above which a tree's table is not built
(its per-leaf work grows as 2^d d^2)."""

MAX_TABLE_VALUES = 8_000_000
"""Cells x features summed over the trees (64 MB of float64) above which shap is used."""

BLOCK_ROWS = 2_048
"""Rows explained per vectorised step: bounds the (rows x tree-features) work arrays."""


@dataclass(frozen=True, eq=False)
class TreeShapTables:
    """Every tree's SHAP values per cell, flattened for vectorised lookups.

    A "pair" is one (tree, feature the tree splits on); pairs are grouped by tree.
    """

    width: int
    """Columns of the rows explained (the model's ``n_features_in_``)."""
    base: float
    """The expected raw score: baseline plus every tree's cover-weighted mean leaf value."""
    columns: np.ndarray
    """(F,) the columns any tree splits on."""
    cuts: tuple[np.ndarray, ...]
    """Per column of ``columns``, every tree's thresholds on it, sorted and distinct."""
    pair_column: np.ndarray
    """(P,) index into ``columns`` of each pair's feature."""
    pair_map: np.ndarray
    """(P,) offset into ``coordinates`` of each pair's map from global bin to cell stride."""
    coordinates: np.ndarray
    """Concatenated maps: global bin of the feature -> the tree's cell offset along it."""
    tree_starts: np.ndarray
    """(T,) first pair of each tree with a split."""
    pair_tree: np.ndarray
    """(P,) index into ``tree_starts`` of each pair's tree."""
    pair_table: np.ndarray
    """(P,) offset into ``values`` of the pair's tree table plus the pair's column in it."""
    pair_width: np.ndarray
    """(P,) features of the pair's tree: a tree's table is (cells, features), row-major."""
    values: np.ndarray
    """Every tree's table, flattened."""
    order: np.ndarray
    """Pairs sorted by output column (stable), for one reduceat per column."""
    column_starts: np.ndarray
    output_columns: np.ndarray

    def shap_values(self, matrix: np.ndarray) -> np.ndarray:
        """(n, width) the SHAP value of each column for each row; rows without NaN."""
        matrix = np.asarray(matrix, dtype=np.float64)
        out = np.zeros((len(matrix), self.width), dtype=np.float64)
        if not len(self.tree_starts):
            return out  # no tree splits: every row scores the base value
        for start in range(0, len(matrix), BLOCK_ROWS):
            block = matrix[start : start + BLOCK_ROWS]
            out[start : start + len(block), self.output_columns] = self._block(block)
        return out

    def _block(self, matrix: np.ndarray) -> np.ndarray:
        bins = np.empty((len(matrix), len(self.columns)), dtype=np.intp)
        for i, (column, cuts) in enumerate(zip(self.columns.tolist(), self.cuts, strict=True)):
            # x <= threshold goes left: the bin is how many thresholds lie strictly below x.
            bins[:, i] = np.searchsorted(cuts, matrix[:, column], side="left")
        offsets = self.coordinates[self.pair_map + bins[:, self.pair_column]]
        cells = np.add.reduceat(offsets, self.tree_starts, axis=1)
        looked_up = self.values[self.pair_table + cells[:, self.pair_tree] * self.pair_width]
        # One sum per output column over its pairs, in a fixed order per row whatever the
        # number of rows, so a batch gives each row the bits a single call gives it.
        return np.add.reduceat(looked_up[:, self.order], self.column_starts, axis=1)


def compile_tree_shap(model: Any) -> TreeShapTables | None:
    """The lookup tables of a fitted single-output HistGradientBoosting model, or None when
    the model is outside what they cover (the caller then uses shap)."""
    if type(model) not in (HistGradientBoostingClassifier, HistGradientBoostingRegressor):
        return None
    try:
        if model.n_trees_per_iteration_ != 1:
            return None
        categorical = getattr(model, "is_categorical_", None)
        if categorical is not None and np.any(categorical):
            return None
        trees = [iteration[0].nodes for iteration in model._predictors]
        baseline = float(np.asarray(model._baseline_prediction).reshape(-1)[0])
        width = int(model.n_features_in_)
    except (AttributeError, IndexError, TypeError):  # private scikit-learn names moved
        return None
    parsed = []
    base = baseline
    total = 0
    for nodes in trees:
        tree = _parse_tree(nodes)
        if tree is None:
            return None
        base += tree.expected
        if tree.leaves:
            total += math.prod(tree.sizes) * len(tree.features)
            if total > MAX_TABLE_VALUES:
                return None
            parsed.append(tree)
    leaves = [leaf for tree in parsed for leaf in tree.leaves]
    if any(len(leaf.slots) > MAX_PATH_FEATURES for leaf in leaves):
        return None
    shapley = iter(_leaf_shapley(leaves))
    built = []
    for tree in parsed:
        table = _tree_grid(tree, [next(shapley) for _ in tree.leaves])
        built.append((tree.features, tree.thresholds, table))
    return _assemble(width, base, built)


@dataclass(frozen=True)
class _Leaf:
    value: float
    slots: tuple[int, ...]
    """The tree-feature indices on the path, ascending."""
    lo: tuple[int, ...]
    hi: tuple[int, ...]
    """Per slot, the cell coordinates [lo, hi] whose rows follow every split on it."""
    shares: tuple[float, ...]
    """Per slot, the product of the path's cover shares on it (r)."""


@dataclass(frozen=True)
class _Tree:
    expected: float
    features: np.ndarray
    thresholds: list[np.ndarray]
    sizes: list[int]
    leaves: list[_Leaf]


def _parse_tree(nodes: np.ndarray) -> _Tree | None:
    """A tree's features, thresholds and leaves, with cell coordinates along each feature
    counting its thresholds strictly below the row's value (x <= t_q is coordinate <= q)."""
    leaf = nodes["is_leaf"].astype(bool)
    count = nodes["count"].astype(np.float64)
    if np.any(count <= 0):
        return None
    if leaf[0]:
        return _Tree(float(nodes["value"][0]), np.empty(0, dtype=np.intp), [], [], [])
    split = ~leaf
    features = np.unique(nodes["feature_idx"][split].astype(np.intp))
    thresholds = [
        np.unique(nodes["num_threshold"][split & (nodes["feature_idx"] == f)].astype(np.float64))
        for f in features.tolist()
    ]
    sizes = [len(t) + 1 for t in thresholds]
    slot_of = {f: j for j, f in enumerate(features.tolist())}
    position = [{t: q for q, t in enumerate(th.tolist())} for th in thresholds]
    # Plain lists: indexing a structured array one node at a time is slow.
    is_leaf, value = leaf.tolist(), nodes["value"].astype(np.float64).tolist()
    feature, threshold = nodes["feature_idx"].tolist(), nodes["num_threshold"].tolist()
    left, right, counts = nodes["left"].tolist(), nodes["right"].tolist(), count.tolist()
    leaves = []
    expected = 0.0
    stack: list[tuple[int, dict[int, tuple[int, int, float]]]] = [(0, {})]
    while stack:
        index, path = stack.pop()
        if is_leaf[index]:
            slots = tuple(sorted(path))
            entry = _Leaf(
                value=value[index],
                slots=slots,
                lo=tuple(path[s][0] for s in slots),
                hi=tuple(path[s][1] for s in slots),
                shares=tuple(path[s][2] for s in slots),
            )
            leaves.append(entry)
            expected += entry.value * math.prod(entry.shares)
            continue
        slot = slot_of[feature[index]]
        q = position[slot][float(threshold[index])]
        lo, hi, share = path.get(slot, (0, sizes[slot] - 1, 1.0))
        for child, (new_lo, new_hi) in (
            (left[index], (lo, min(hi, q))),
            (right[index], (max(lo, q + 1), hi)),
        ):
            child_path = dict(path)
            child_path[slot] = (new_lo, new_hi, share * counts[child] / counts[index])
            stack.append((child, child_path))
    return _Tree(expected, features, thresholds, sizes, leaves)


def _leaf_shapley(leaves: list[_Leaf]) -> list[np.ndarray]:
    """Per leaf, (2^d, d): each path feature's Shapley value in the leaf's product game for
    every pattern of z (bit j: the row follows every split on slot j). Leaves with the same
    d are computed together."""
    out: list[np.ndarray] = [np.empty((0, 0))] * len(leaves)
    groups: dict[int, list[int]] = {}
    for i, entry in enumerate(leaves):
        groups.setdefault(len(entry.slots), []).append(i)
    for d, members in groups.items():
        value = np.array([leaves[i].value for i in members])
        r = np.array([leaves[i].shares for i in members]).reshape(len(members), d)
        patterns = 1 << d
        z = ((np.arange(patterns)[:, None] >> np.arange(d)[None, :]) & 1).astype(np.float64)
        weights = np.array(
            [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)]
        )
        phi = np.empty((len(members), patterns, d))
        for i in range(d):
            # Coefficients of prod_{u != i} (r_u + z_u t): coefficient s weighs coalitions
            # of s features.
            poly = np.zeros((len(members), patterns, d))
            poly[..., 0] = 1.0
            for u in range(d):
                if u == i:
                    continue
                grown = poly * r[:, None, u : u + 1]
                grown[..., 1:] += poly[..., :-1] * z[None, :, u : u + 1]
                poly = grown
            phi[..., i] = value[:, None] * (z[None, :, i] - r[:, None, i]) * (poly @ weights)
        for j, i in enumerate(members):
            out[i] = phi[j]
    return out


def _tree_grid(tree: _Tree, shapley: list[np.ndarray]) -> np.ndarray:
    """(cells, k): the sum over the tree's leaves of each feature's value, per cell."""
    sizes, k = tree.sizes, len(tree.sizes)
    table = np.zeros((*sizes, k))
    for entry, phi in zip(tree.leaves, shapley, strict=True):
        # The leaf's pattern over the sub-grid of its own features (1 along the others).
        pattern = np.zeros((1,) * k, dtype=np.intp)
        for j, (s, lo, hi) in enumerate(zip(entry.slots, entry.lo, entry.hi, strict=True)):
            coordinate = np.arange(sizes[s])
            inside = ((coordinate >= lo) & (coordinate <= hi)).astype(np.intp) << j
            shape = [1] * k
            shape[s] = sizes[s]
            pattern = pattern + inside.reshape(shape)
        for j, s in enumerate(entry.slots):
            table[..., s] += phi[pattern, j]
    return table.reshape(-1, k)


def _assemble(
    width: int, base: float, built: list[tuple[np.ndarray, list[np.ndarray], np.ndarray]]
) -> TreeShapTables:
    columns = np.unique(np.concatenate([f for f, _, _ in built])) if built else np.empty(0, int)
    column_index = {c: i for i, c in enumerate(columns.tolist())}
    cuts_lists: dict[int, list[np.ndarray]] = {c: [] for c in columns.tolist()}
    for features, thresholds, _ in built:
        for f, t in zip(features.tolist(), thresholds, strict=True):
            cuts_lists[f].append(t)
    cuts = tuple(np.unique(np.concatenate(cuts_lists[c])) for c in columns.tolist())

    pair_column, pair_map, pair_tree, pair_table, pair_width, pair_output = [], [], [], [], [], []
    maps: list[np.ndarray] = []
    map_offset = 0
    table_offset = 0
    tree_starts = []
    tables = []
    for t, (features, thresholds, table) in enumerate(built):
        tree_starts.append(len(pair_column))
        k = len(features)
        sizes = [len(th) + 1 for th in thresholds]
        strides = np.cumprod([1, *sizes[::-1]])[:-1][::-1]  # row-major strides
        for j, (f, th) in enumerate(zip(features.tolist(), thresholds, strict=True)):
            global_cuts = cuts[column_index[f]]
            # Global bin b means exactly global_cuts[:b] lie below x; the tree's coordinate
            # is how many of its own thresholds are among them.
            local = np.concatenate([[0], np.searchsorted(th, global_cuts, side="right")])
            maps.append(local.astype(np.int64) * int(strides[j]))
            pair_column.append(column_index[f])
            pair_map.append(map_offset)
            map_offset += len(local)
            pair_tree.append(t)
            pair_table.append(table_offset + j)
            pair_width.append(k)
            pair_output.append(f)
        tables.append(table.reshape(-1))
        table_offset += table.size
    pair_output_arr = np.asarray(pair_output, dtype=np.intp)
    order = np.argsort(pair_output_arr, kind="stable")
    sorted_columns = pair_output_arr[order]
    starts = np.flatnonzero(np.r_[True, sorted_columns[1:] != sorted_columns[:-1]])
    if not len(sorted_columns):
        starts = starts[:0]
    return TreeShapTables(
        width=width,
        base=float(base),
        columns=columns.astype(np.intp),
        cuts=cuts,
        pair_column=np.asarray(pair_column, dtype=np.intp),
        pair_map=np.asarray(pair_map, dtype=np.intp),
        coordinates=np.concatenate(maps) if maps else np.zeros(1, dtype=np.int64),
        tree_starts=np.asarray(tree_starts, dtype=np.intp),
        pair_tree=np.asarray(pair_tree, dtype=np.intp),
        pair_table=np.asarray(pair_table, dtype=np.int64),
        pair_width=np.asarray(pair_width, dtype=np.int64),
        values=np.concatenate(tables) if tables else np.zeros(1),
        order=order,
        column_starts=starts.astype(np.intp),
        output_columns=sorted_columns[starts],
    )


__all__ = ["TreeShapTables", "compile_tree_shap"]
