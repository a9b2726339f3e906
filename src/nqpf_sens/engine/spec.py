"""The structure of a composite index: indicators, their direction and weight, and the aggregation
tree.

A metadata file has one row per indicator with at least ``code, dimension, weight, direction``
(Table 1 of Ye & Xu 2024 is accepted as transcribed). COINr-style files (``iCode, Parent, Weight,
Direction, Type``) are accepted too; their ``Aggregate`` rows give the upper levels of a deeper
tree. Without aggregate rows each dimension weighs the sum of its indicators' weights (40/40/20
for NQPF) and the dimensions feed one index called ``total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nqpf_sens.engine.cells import cell_text, parse_numbers, read_csv
from nqpf_sens.engine.normalise import METHODS as NORMALISATIONS
from nqpf_sens.engine.transform import FALLBACKS as TREAT_FALLBACKS
from nqpf_sens.errors import UserError, quoted

ROOT_CODE = "total"
MAX_WEIGHT = 1e100
#: metadata columns of per-indicator parameters: COINr's iMeta names for the normalisation, the
#: pipeline's keys for the outlier treatment (an indicator's own value overrides the pipeline's)
PARAMETER_COLUMNS = (
    "Target",
    "goalpost_lower",
    "goalpost_upper",
    "goalpost_scale",
    "minmax_lower",
    "minmax_upper",
    "zscore_mean",
    "zscore_sd",
    "winsor_max",
    "boxcox_lambda",
)
#: metadata columns naming an indicator's own method (COINr's ``indiv_specs``), and the methods
OWN_METHOD_COLUMNS = {"normalisation": NORMALISATIONS, "treat_fallback": TREAT_FALLBACKS}
#: names the output tables use for their own columns: no indicator or aggregate may take them
RESERVED_CODES = ("unit", "year", "rank", "tier", "total", "indicator", "value")
#: the row types of COINr's iMeta (case and spaces aside); "other" rows are not used
ROW_TYPES = ("indicator", "aggregate", "group", "denominator", "other")

_ALIASES = {
    "code": ("code", "iCode", "indicator"),
    "parent": ("dimension", "parent", "Parent", "pillar"),
    "weight": ("weight", "Weight"),
    "direction": ("direction", "Direction"),
    "type": ("type", "Type"),
    "label": ("name", "iName", "label"),
    "transform": ("transform",),
    "denominator": ("denominator", "Denominator"),
}
_DIRECTIONS = {
    "positive": 1.0,
    "negative": -1.0,
    "1": 1.0,
    "-1": -1.0,
    "+1": 1.0,
    "1.0": 1.0,
    "-1.0": -1.0,
}


@dataclass(frozen=True, eq=False)
class IndexSpec:
    """An index tree: level 0 holds the indicators, the last level holds the single index node.

    ``parents[k][i]`` is the position in ``levels[k + 1]`` of the parent of node ``levels[k][i]``;
    ``weights[k][i]`` is that node's weight within its parent (only ratios between siblings matter).
    ``transform_flag`` marks the indicators that a flagged transformation (the paper's square
    root) touches.
    ``denominators`` names, per indicator, the data column it is divided by (None: not denominated);
    ``declared_columns`` are the denominator and group columns the metadata declares for the data.
    ``parameters`` holds the per-indicator parameters of ``PARAMETER_COLUMNS`` the metadata
    gives, NaN where a cell is empty; ``own_methods`` each indicator's own method from the
    columns of ``OWN_METHOD_COLUMNS`` (None: the pipeline's).
    """

    levels: tuple[tuple[str, ...], ...]
    parents: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray, ...]
    direction: np.ndarray
    transform_flag: np.ndarray
    labels: dict[str, str] = field(default_factory=dict)
    denominators: tuple[str | None, ...] = ()
    declared_columns: tuple[str, ...] = ()
    parameters: dict[str, np.ndarray] = field(default_factory=dict)
    own_methods: dict[str, tuple[str | None, ...]] = field(default_factory=dict)

    @property
    def indicators(self) -> tuple[str, ...]:
        return self.levels[0]

    @property
    def index_code(self) -> str:
        return self.levels[-1][0]

    @property
    def dimensions(self) -> tuple[str, ...]:
        """The nodes just below the index (the paper's three dimensions)."""
        return self.levels[-2]

    @property
    def aggregates(self) -> tuple[str, ...]:
        """Every aggregate node, level by level from the bottom, the index last."""
        return tuple(code for level in self.levels[1:] for code in level)

    def membership(self, level: int) -> np.ndarray:
        """0/1 matrix (children x parents) of level ``level`` into level ``level + 1``."""
        n_children, n_parents = len(self.levels[level]), len(self.levels[level + 1])
        matrix = np.zeros((n_children, n_parents))
        matrix[np.arange(n_children), self.parents[level]] = 1.0
        return matrix

    def leaf_parent(self, level: int) -> np.ndarray:
        """For each indicator, the position of its ancestor at ``level`` (level 0 is the indicator
        itself)."""
        position = np.arange(len(self.indicators))
        for k in range(level):
            position = self.parents[k][position]
        return position

    def can_leave_out(self, level: int, position: int) -> bool:
        """Whether node ``position`` of ``level`` has a sibling of positive weight, so that
        leaving it out (its weight set to zero) does not empty its parent."""
        parents, weights = np.asarray(self.parents[level]), np.asarray(self.weights[level])
        siblings = (parents == parents[position]) & (np.arange(len(parents)) != position)
        return bool((weights[siblings] > 0).any())

    def drop(self, codes: list[str] | tuple[str, ...]) -> IndexSpec:
        """The same tree without some indicators (leave-one-out), refusing to empty an aggregate."""
        keep = np.array([c not in set(codes) for c in self.indicators])
        parent0 = self.parents[0][keep]
        if len(np.unique(parent0)) < len(self.levels[1]):
            empty = sorted(set(self.levels[1]) - {self.levels[1][p] for p in parent0})
            raise UserError(f"dropping {list(codes)} leaves {empty} without any indicator")
        indicators = tuple(np.array(self.indicators)[keep])
        return IndexSpec(
            levels=(indicators, *self.levels[1:]),
            parents=(parent0, *self.parents[1:]),
            weights=(self.weights[0][keep], *self.weights[1:]),
            direction=self.direction[keep],
            transform_flag=self.transform_flag[keep],
            labels=self.labels,
            denominators=tuple(np.array(self.denominators, dtype=object)[keep])
            if self.denominators
            else (),
            declared_columns=self.declared_columns,
            parameters={name: values[keep] for name, values in self.parameters.items()},
            own_methods={
                column: tuple(np.array(methods, dtype=object)[keep])
                for column, methods in self.own_methods.items()
            },
        )


def _find(frame: pd.DataFrame, role: str) -> str | None:
    """The column playing ``role`` under any of its accepted names, or None."""
    return next((name for name in _ALIASES[role] if name in frame.columns), None)


def _pick(frame: pd.DataFrame, role: str, source: Path) -> str:
    """The column playing ``role``; a file without one is refused."""
    name = _find(frame, role)
    if name is None:
        raise UserError(
            f"missing column '{_ALIASES[role][0]}' (accepted names: {', '.join(_ALIASES[role])})",
            source,
        )
    return name


def _cell(codes: pd.Series, row: int, column: str) -> str:
    """Where a metadata cell is: its file row (after the header), indicator and column."""
    return f"row {row + 2} ({codes.iloc[row]}), column '{column}'"


def _numbers(
    series: pd.Series, column: str, codes: pd.Series, source: Path, required: bool
) -> np.ndarray:
    """A metadata column's numbers (NaN where empty, unless ``required``); the first cell that is
    not a finite number is refused by row, indicator and column."""
    values, bad = parse_numbers(series)
    if required:
        bad |= np.isnan(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"not a finite number: {cell_text(series, row)}",
            source,
            _cell(codes, row, column),
        )
    return values


def _weights(series: pd.Series, column: str, codes: pd.Series, source: Path) -> np.ndarray:
    """Finite weights of a scale that can be summed (only their ratios matter)."""
    values = _numbers(series, column, codes, source, required=True)
    too_large = np.flatnonzero(np.abs(values) > MAX_WEIGHT)
    if too_large.size:
        row = int(too_large[0])
        raise UserError(
            f"weight {cell_text(series, row)} is too large to sum "
            "(only ratios matter: rescale the weights)",
            source,
            _cell(codes, row, column),
        )
    return values


def _check_weights(
    weights: np.ndarray,
    codes: list[str],
    parents: np.ndarray,
    parent_codes: tuple[str, ...],
    column: str,
    source: Path,
) -> None:
    for i in np.flatnonzero(weights < 0):
        raise UserError(
            f"negative weight {weights[i]:g}", source, f"'{codes[i]}', column '{column}'"
        )
    for p, code in enumerate(parent_codes):
        if not np.any(weights[parents == p] > 0):
            raise UserError("all weights are zero", source, f"'{code}', column '{column}'")


def spec_from_frame(frame: pd.DataFrame, source: Path) -> IndexSpec:
    """Build and validate an :class:`IndexSpec` from a metadata table."""
    if frame.empty:
        raise UserError("no rows", source)
    type_col = _find(frame, "type")
    declared: tuple[str, ...] = ()
    if type_col is not None:
        kinds = frame[type_col].fillna("Indicator").astype(str).str.strip().str.lower()
        for row, kind in enumerate(kinds):
            if kind not in ROW_TYPES:
                raise UserError(
                    f"unknown type {cell_text(frame[type_col], row)} (Indicator, Aggregate, Group, "
                    "Denominator or Other)",
                    source,
                    f"row {row + 2}, column '{type_col}'",
                )
        aggregates = frame[kinds == "aggregate"]
        declared = tuple(
            frame.loc[kinds.isin(["group", "denominator"]), _pick(frame, "code", source)].astype(
                str
            )
        )
        frame = frame[kinds == "indicator"]
    else:
        aggregates = frame.iloc[0:0]
    code_col = _pick(frame, "code", source)
    parent_col = _pick(frame, "parent", source)
    weight_col = _pick(frame, "weight", source)
    direction_col = _pick(frame, "direction", source)
    codes = frame[code_col].fillna("").astype(str).str.strip()
    for dup in codes[codes.duplicated()]:
        raise UserError(f"indicator '{dup}' is listed twice", source, f"column '{code_col}'")
    directions = []
    for row, value in enumerate(
        frame[direction_col].fillna("").astype(str).str.strip().str.lower()
    ):
        if not value:
            raise UserError(
                "empty direction (use positive/negative or 1/-1)",
                source,
                _cell(codes, row, direction_col),
            )
        if value not in _DIRECTIONS:
            raise UserError(
                f"unknown direction {quoted(value)} (use positive/negative or 1/-1)",
                source,
                _cell(codes, row, direction_col),
            )
        directions.append(_DIRECTIONS[value])
    weights = _weights(frame[weight_col], weight_col, codes, source)
    parent_names = frame[parent_col]
    if parent_names.isna().any():
        row = int(np.flatnonzero(parent_names.isna().to_numpy())[0])
        raise UserError("empty dimension", source, _cell(codes, row, parent_col))
    parent_names = parent_names.astype(str).str.strip()
    transform_col = _find(frame, "transform")
    flags = np.zeros(len(frame), dtype=bool)
    if transform_col is not None:
        flags = frame[transform_col].fillna("").astype(str).str.strip().ne("").to_numpy()
    label_col = _find(frame, "label")
    labels = (
        {} if label_col is None else dict(zip(codes, frame[label_col].astype(str), strict=True))
    )
    denominator_col = _find(frame, "denominator")
    denominators: tuple[str | None, ...] = ()
    if denominator_col is not None:
        denominators = tuple(
            None if pd.isna(d) or not str(d).strip() else str(d).strip()
            for d in frame[denominator_col]
        )
        declared = tuple(dict.fromkeys([*declared, *(d for d in denominators if d)]))

    if aggregates.empty:  # the implied tree: dimensions under one index called total
        _check_codes((tuple(codes), tuple(dict.fromkeys(parent_names)), (ROOT_CODE,)), source)
    node_parent, node_weight = _aggregate_nodes(aggregates, parent_names, codes, weights, source)
    levels, parents, level_weights = _layer_tree(
        list(codes), parent_names.tolist(), weights, node_parent, node_weight, source
    )
    _check_codes(levels, source)
    for k in range(len(levels) - 1):
        _check_weights(
            level_weights[k], list(levels[k]), parents[k], levels[k + 1], weight_col, source
        )
    return IndexSpec(
        levels=levels,
        parents=parents,
        weights=level_weights,
        direction=np.array(directions),
        transform_flag=flags,
        labels=labels,
        denominators=denominators,
        declared_columns=declared,
        parameters=_parameters(frame, codes, source),
        own_methods=_own_methods(frame, codes, source),
    )


def _own_methods(
    frame: pd.DataFrame, codes: pd.Series, source: Path
) -> dict[str, tuple[str | None, ...]]:
    """Each indicator's own methods, from the columns of ``OWN_METHOD_COLUMNS`` (empty: None)."""
    found = {}
    for column in (c for c in OWN_METHOD_COLUMNS if c in frame.columns):
        allowed = OWN_METHOD_COLUMNS[column]
        own = frame[column].fillna("").astype(str).str.strip()
        for row, method in enumerate(own):
            if method and method not in allowed:
                raise UserError(
                    f"unknown {column} {quoted(method)} (choose from {', '.join(allowed)})",
                    source,
                    _cell(codes, row, column),
                )
        found[column] = tuple(method or None for method in own)
    return found


def _parameters(frame: pd.DataFrame, codes: pd.Series, source: Path) -> dict[str, np.ndarray]:
    """The per-indicator parameters the metadata gives (empty cells: NaN); a ``winsor_max`` must
    be a whole number of points, not negative."""
    found = {
        name: _numbers(frame[name], name, codes, source, required=False)
        for name in PARAMETER_COLUMNS
        if name in frame.columns
    }
    points = found.get("winsor_max", np.array([]))
    bad = np.flatnonzero(~np.isnan(points) & ((points < 0) | (points != np.round(points))))
    if bad.size:
        row = int(bad[0])
        raise UserError(
            f"not a whole number of points >= 0: {cell_text(frame['winsor_max'], row)}",
            source,
            _cell(codes, row, "winsor_max"),
        )
    return found


def _check_codes(levels: tuple[tuple[str, ...], ...], source: Path) -> None:
    """Codes name output columns: refuse empty ones and those the outputs reserve for themselves
    (the index itself may be called ``total``), and a code used at two levels, which would make a
    name ambiguous (an indicator called like its dimension)."""
    for level in levels[:-1]:
        for code in level:
            if not code:
                raise UserError("empty code", source)
            if code in RESERVED_CODES:
                raise UserError(
                    f"'{code}' is reserved for a column of the outputs; rename it",
                    source,
                    f"code '{code}'",
                )
    seen: set[str] = set()
    for level in levels:
        twice = seen & set(level)
        if twice:
            code = sorted(twice)[0]
            raise UserError(
                f"'{code}' names both an indicator or aggregate and another node; rename one",
                source,
                f"code '{code}'",
            )
        seen |= set(level)


def _aggregate_nodes(
    aggregates: pd.DataFrame,
    parent_names: pd.Series,
    codes: pd.Series,
    weights: np.ndarray,
    source: Path,
) -> tuple[dict[str, str | None], dict[str, float]]:
    """Parent and weight of every aggregate node, explicit (aggregate rows) or implied
    (dimensions -> total)."""
    if aggregates.empty:
        dims = list(dict.fromkeys(parent_names))
        node_parent: dict[str, str | None] = {d: ROOT_CODE for d in dims}
        node_parent[ROOT_CODE] = None
        node_weight = {d: float(weights[(parent_names == d).to_numpy()].sum()) for d in dims}
        node_weight[ROOT_CODE] = 1.0
        return node_parent, node_weight
    code_col = _pick(aggregates, "code", source)
    parent_col = _pick(aggregates, "parent", source)
    weight_col = _pick(aggregates, "weight", source)
    agg_codes = aggregates[code_col].fillna("").astype(str).str.strip()
    clash = set(agg_codes) & set(codes)
    if clash:
        raise UserError(f"code '{sorted(clash)[0]}' is both an indicator and an aggregate", source)
    for dup in agg_codes[agg_codes.duplicated()]:
        raise UserError(f"aggregate '{dup}' is listed twice", source, f"column '{code_col}'")
    agg_weights = _weights(aggregates[weight_col], weight_col, agg_codes, source)
    node_parent = {
        c: (None if pd.isna(p) or not str(p).strip() else str(p).strip())
        for c, p in zip(agg_codes, aggregates[parent_col], strict=True)
    }
    node_weight = dict(zip(agg_codes, agg_weights, strict=True))
    indicators = set(codes)
    for name in parent_names:
        if name in indicators:
            raise UserError(
                f"'{name}' is an indicator, not an aggregate: it cannot be a parent", source
            )
        if name not in node_parent:
            raise UserError(f"dimension '{name}' has no aggregate row", source)
    return node_parent, node_weight


def _layer_tree(
    codes: list[str],
    parent_names: list[str],
    weights: np.ndarray,
    node_parent: dict[str, str | None],
    node_weight: dict[str, float],
    source: Path,
):
    roots = [c for c, p in node_parent.items() if p is None]
    if len(roots) != 1:
        raise UserError(
            f"the tree needs exactly one root aggregate (without parent), found {roots or 'none'}",
            source,
        )
    depth: dict[str, int] = {}

    def node_depth(code: str) -> int:
        """Levels between ``code`` and the root, walking up (not recursing: a tree may be
        deeper than Python's recursion allows)."""
        chain: list[str] = []  # the nodes walked through, whose depths follow from the last
        node = code
        while node not in depth:
            if node in chain:
                raise UserError(f"cycle in the aggregation tree at '{node}'", source)
            parent = node_parent.get(node, "")
            if parent == "":
                raise UserError(f"parent '{node}' is not defined", source)
            if parent is None:
                depth[node] = 0
                break
            chain.append(node)
            node = parent
        for child in reversed(chain):
            depth[child] = depth[str(node_parent[child])] + 1
        return depth[code]

    leaf_depths = {node_depth(p) + 1 for p in parent_names}
    if len(leaf_depths) != 1:
        raise UserError(
            "indicators sit at different depths of the tree; "
            "every branch must have the same number of levels",
            source,
        )
    n_levels = leaf_depths.pop() + 1
    for code in node_parent:
        node_depth(code)
    levels: list[tuple[str, ...]] = [tuple(codes)]
    for k in range(n_levels - 2, -1, -1):
        levels.append(tuple(c for c in node_parent if depth[c] == k))
    for k in range(1, n_levels - 1):
        children = {node_parent[c] for c in levels[k - 1]} if k > 1 else set(parent_names)
        for code in levels[k]:
            if code not in children:
                raise UserError(f"aggregate '{code}' has no indicator below it", source)
    parents = [np.array([levels[1].index(p) for p in parent_names])]
    level_weights = [np.asarray(weights, dtype=float)]
    for k in range(1, n_levels - 1):
        parents.append(np.array([levels[k + 1].index(node_parent[c]) for c in levels[k]]))
        level_weights.append(np.array([node_weight[c] for c in levels[k]], dtype=float))
    return tuple(levels), tuple(parents), tuple(level_weights)


def load_spec(path: str | Path) -> IndexSpec:
    """Read and validate an index metadata file."""
    path = Path(path)
    return spec_from_frame(read_csv(path), path)
