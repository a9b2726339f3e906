"""Random composite indices for the property tests of the audit: trees of depth 1-3, 3-40 units,
integer data with ties, zeros and missing cells, and random sets of uncertain factors, written as
a project folder (COINr-style metadata, a values file) that a run's config names."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

import nqpf_sens as ns

#: the audit steps are properties of their own modules; the studies here need none of them
NO_AUDIT = {"coherence": False, "importance": False, "what_if": False, "rank_bounds": False}


@dataclass(frozen=True)
class GeneratedIndex:
    """A composite index and its data: ``tree`` maps each node below the index to its parent;
    ``weights`` and ``directions`` are the metadata's; ``values`` is one row per unit."""

    tree: dict[str, str]
    weights: dict[str, float]
    directions: dict[str, int]
    values: pd.DataFrame

    @property
    def indicators(self) -> list[str]:
        return [code for code in self.values.columns if code != "unit"]

    @property
    def units(self) -> list[str]:
        return self.values.unit.tolist()

    @property
    def depth(self) -> int:
        """Levels below the index: 1 when the indicators are the index's children."""
        node, depth = self.indicators[0], 1
        while self.tree[node] != "Index":
            node, depth = self.tree[node], depth + 1
        return depth

    def metadata(self) -> pd.DataFrame:
        rows = [
            (code, parent, self.weights[code], self.directions.get(code, 1), "Indicator")
            for code, parent in self.tree.items()
            if code in self.indicators
        ]
        rows += [
            (code, parent, self.weights[code], 1, "Aggregate")
            for code, parent in self.tree.items()
            if code not in self.indicators
        ]
        rows.append(("Index", "", 1, 1, "Aggregate"))
        return pd.DataFrame(rows, columns=["iCode", "Parent", "Weight", "Direction", "Type"])

    def with_values(self, values: pd.DataFrame) -> GeneratedIndex:
        return replace(self, values=values)

    def write(self, folder: Path) -> None:
        self.metadata().to_csv(folder / "meta.csv", index=False)
        self.values.to_csv(folder / "values.csv", index=False)


@st.composite
def indices(draw, min_units: int = 3, max_units: int = 40, missing: bool = True) -> GeneratedIndex:
    """A random index: every aggregate has 1-3 children (the index 2-3), so at most 27 indicators;
    integer weights 1-4, a few indicators negative; values are integers on a small range, so ties
    and zeros are common, every indicator takes at least two values, and up to 10% of the other
    cells may be missing."""
    depth = draw(st.integers(1, 3))
    tree: dict[str, str] = {}
    parents = ["Index"]
    for level in range(depth, 0, -1):
        children = []
        for parent in parents:
            low = 2 if parent == "Index" else 1
            for _ in range(draw(st.integers(low, 3))):
                code = f"L{level}n{len(children)}" if level > 1 else f"i{len(children)}"
                tree[code] = parent
                children.append(code)
        parents = children
    indicators = parents
    weights = {code: float(draw(st.integers(1, 4))) for code in tree}
    directions = {code: draw(st.sampled_from([1, 1, 1, -1])) for code in indicators}
    n_units = draw(st.integers(min_units, max_units))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    top = draw(st.integers(1, 30))
    values = rng.integers(0, top + 1, size=(n_units, len(indicators))).astype(float)
    anchors = rng.permuted(np.tile(np.arange(n_units), (len(indicators), 1)), axis=1)[:, :2]
    if missing and draw(st.booleans()):
        values[rng.random(values.shape) < 0.1] = np.nan
    for j, (low, high) in enumerate(anchors):
        values[low, j], values[high, j] = 0.0, top  # two values at least, never missing
    frame = pd.DataFrame(values, columns=indicators)
    frame.insert(0, "unit", [f"u{i:02d}" for i in range(n_units)])
    return GeneratedIndex(tree, weights, directions, frame)


def _leaveable(index: GeneratedIndex) -> list[str]:
    """Indicators with a sibling (leaving one out must not empty its parent)."""
    parents = [index.tree[code] for code in index.indicators]
    return [code for code, p in zip(index.indicators, parents, strict=True) if parents.count(p) > 1]


@st.composite
def factor_sets(draw, index: GeneratedIndex, weights_only: bool = False) -> list[dict]:
    """One to four distinct uncertain factors valid for ``index`` (each kind at most once, weights
    once per level)."""
    levels = list(range(index.depth))
    options = [("weights", level) for level in levels]
    if not weights_only:
        options += [("normalisation",), ("aggregation",), ("noise",), ("mask",)]
        options += [("exclude",)] if _leaveable(index) else []
    chosen = draw(st.lists(st.sampled_from(options), min_size=1, max_size=4, unique=True))
    return [draw(_factor(index, *item)) for item in chosen]


@st.composite
def _factor(draw, index: GeneratedIndex, kind: str, level: int = 0) -> dict:
    if kind == "weights":
        spread = draw(st.sampled_from([0.1, 0.25, 0.5]))
        return {"name": f"weights_{level}", "kind": "weights", "level": level, "spread": spread}
    if kind == "normalisation":
        methods = ["minmax", "zscore", "rank", "distance_to_leader"]
        alternative = draw(st.sampled_from(methods[1:]))
        return {"name": kind, "kind": "choice", "key": kind, "options": ["minmax", alternative]}
    if kind == "aggregation":
        return {"name": kind, "kind": "choice", "key": kind, "options": ["arithmetic", "geometric"]}
    if kind == "noise":
        return {"name": "noise", "kind": "noise", "spread": draw(st.sampled_from([0.02, 0.1]))}
    if kind == "mask":
        return {"name": "mask", "kind": "mask", "cells": draw(st.integers(1, 3))}
    left_out = draw(st.sampled_from(_leaveable(index)))
    return {"name": "exclude", "kind": "exclude", "options": ["none", left_out]}


def raw_config(
    factors: list[dict], kind: str = "montecarlo", n: int = 64, seed: int = 1, **sections: dict
) -> dict:
    """The sections of a run of a generated index: median imputation, rank 1, rank 2 and the rest
    as tiers, the audit off, ``sections`` merged over these."""
    raw = {
        "run": {"name": "generated", "kind": kind, "seed": seed, "jobs": 1},
        "data": {"metadata": "meta.csv", "values": "values.csv"},
        "pipeline": {"imputation": "median"},
        "tiers": {"scheme": "fixed_ranks", "bounds": [1, 2]},
        "sampling": {"n": n, "bootstrap": 20},
        "audit": dict(NO_AUDIT),
        "factors": factors,
    }
    for name, section in sections.items():
        raw[name] = {**raw.get(name, {}), **section}
    return raw


def config(folder: Path, factors: list[dict], *args, **sections) -> ns.RunConfig:
    """The run of :func:`raw_config` on the index written in ``folder``."""
    return ns.config_from_dict(raw_config(factors, *args, **sections), folder)


def write_config(folder: Path, raw: dict) -> Path:
    """``raw`` as ``folder/run.toml`` (JSON's strings, numbers, booleans and lists are TOML's)."""
    lines = []
    for name, section in raw.items():
        tables = section if name == "factors" else [section]
        for table in tables:
            lines.append(f"[[{name}]]" if name == "factors" else f"[{name}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    path = folder / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def project(index: GeneratedIndex) -> Iterator[Path]:
    """A temporary folder holding the index's metadata and values."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        index.write(folder)
        yield folder
