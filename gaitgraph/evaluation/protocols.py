"""Gallery/probe protocols as declared in a dataset config (``protocols: {name: spec}``).

A spec names a gallery query, one query per probe condition, whether the identical view is excluded
from the per-view means, what to do with probes whose subject has no gallery sequence at a view, and
optionally the ordered view list. A query maps a metadata column to its allowed values, e.g.
``{condition: [nm], seq: [1, 2, 3, 4]}``; a sequence matches when every column's value is allowed.
Sequences at views outside ``views`` take part in neither side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from gaitgraph.utils import plain

MissingGallery = Literal["fail", "skip"]
_SPEC_KEYS = {"gallery", "probes", "exclude_identical_view", "missing_gallery", "views"}


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    missing_gallery: "fail" counts a probe whose subject has no gallery sequence at the gallery view as
    wrong (GaitGraph2's OUMVLP rule); "skip" leaves such probes out of that cell.
    views: ordered view labels used for rows/columns; ``None`` = sorted unique views of the data.
    """

    name: str
    gallery: dict[str, list[Any]]
    probes: dict[str, dict[str, list[Any]]]
    exclude_identical_view: bool = True
    missing_gallery: MissingGallery = "fail"
    views: list[str] | None = field(default=None)

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any]) -> "Protocol":
        """Build from one entry of a dataset config's ``protocols:`` mapping (dict or DictConfig)."""
        spec = plain(spec)
        where = f"protocol '{name}'"
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(_SPEC_KEYS)}")
        for key in ("gallery", "probes", "exclude_identical_view"):
            if key not in spec:
                raise ValueError(f"{where}: missing key '{key}'")
        if not isinstance(spec["probes"], dict) or not spec["probes"]:
            raise ValueError(f"{where}: 'probes' must be a non-empty mapping condition -> query, found {spec['probes']!r}")
        missing = spec.get("missing_gallery", "fail")
        if missing not in ("fail", "skip"):
            raise ValueError(f"{where}: missing_gallery must be 'fail' or 'skip', found {missing!r}")
        views = spec.get("views")
        return cls(
            name=name,
            gallery=_query(spec["gallery"], f"{where} gallery"),
            probes={str(c): _query(q, f"{where} probe '{c}'") for c, q in spec["probes"].items()},
            exclude_identical_view=bool(spec["exclude_identical_view"]),
            missing_gallery=missing,
            views=None if views is None else [str(v) for v in views],
        )

    def resolve_views(self, meta: pd.DataFrame) -> list[str]:
        """The ordered view labels this protocol scores on ``meta``."""
        return list(self.views) if self.views is not None else sorted(meta["view"].astype(str).unique())


def load_protocols(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, Protocol]:
    """All protocols of a dataset config's ``protocols:`` mapping, in config order."""
    return {str(name): Protocol.from_config(str(name), spec) for name, spec in plain(specs).items()}


def select(meta: pd.DataFrame, query: Mapping[str, list[Any]], what: str) -> np.ndarray:
    """Boolean mask of the ``meta`` rows matching ``query``; raises if it matches nothing.

    Query values are cast to the column's type so that YAML ints/strings compare as the data does.
    """
    mask = np.ones(len(meta), dtype=bool)
    for col, allowed in query.items():
        if col not in meta.columns:
            raise ValueError(f"{what}: column '{col}' is not in the metadata (columns: {list(meta.columns)})")
        column = meta[col]
        mask &= column.isin(_cast(allowed, column, what, col)).to_numpy()
    if not mask.any():
        found = {col: sorted(map(str, meta[col].unique()))[:20] for col in query}
        raise ValueError(f"{what}: query {dict(query)} matches no sequence; values present: {found}")
    return mask


def _cast(values: list[Any], column: pd.Series, what: str, col: str) -> list[Any]:
    if pd.api.types.is_integer_dtype(column):
        try:
            return [int(v) for v in values]
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what}: column '{col}' holds integers, found values {values!r}") from err
    return [str(v) for v in values]


def _query(query: Any, what: str) -> dict[str, list[Any]]:
    if not isinstance(query, dict):
        raise ValueError(f"{what}: expected a mapping column -> list of values, found {query!r}")
    out = {}
    for col, values in query.items():
        out[str(col)] = list(values) if isinstance(values, (list, tuple)) else [values]
    return out

