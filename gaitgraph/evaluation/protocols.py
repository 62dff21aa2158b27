"""Gallery/probe protocols as declared in a dataset config (``protocols: {name: spec}``).

Two kinds. The default (per view, CASIA-B / OUMVLP): a spec names a gallery query, one query per probe
condition, whether the identical view is excluded from the per-view means, what to do with probes whose
subject has no gallery sequence at a view, and optionally the ordered view list. Sequences at views
outside ``views`` take part in neither side. ``kind: retrieval`` (GREW, Gait3D,
docs/protocols-retrieval.md): every probe is ranked against the whole gallery; see
:class:`RetrievalProtocol`.

A query maps a metadata column to its allowed values, e.g. ``{condition: [nm], seq: [1, 2, 3, 4]}``;
a sequence matches when every column's value is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from gaitgraph.errors import ConfigError
from gaitgraph.utils import plain

MissingGallery = Literal["fail", "skip"]
_SPEC_KEYS = {"gallery", "probes", "exclude_identical_view", "missing_gallery", "views"}
_RETRIEVAL_KEYS = {"kind", "gallery", "probes", "ranks", "missing_gallery", "submission", "val"}
#: ``gallery: others``: every sequence of the split that is not a probe (Gait3D's gallery).
OTHERS = "others"
SPLITS = ("val", "test")


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
    def from_config(cls, name: str, spec: Mapping[str, Any]) -> Protocol:
        """Build from one entry of a dataset config's ``protocols:`` mapping (dict or DictConfig)."""
        spec = plain(spec)
        where = f"dataset.protocols.{name}"
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ConfigError(where, sorted(spec), f"some of {sorted(_SPEC_KEYS)} (unknown keys {sorted(unknown)})")
        for key in ("gallery", "probes", "exclude_identical_view"):
            if key not in spec:
                raise ConfigError(f"{where}.{key}", None, f"a value (missing key '{key}')")
        if not isinstance(spec["probes"], dict) or not spec["probes"]:
            raise ConfigError(f"{where}.probes", spec["probes"], "a non-empty mapping condition -> query")
        missing = spec.get("missing_gallery", "fail")
        if missing not in ("fail", "skip"):
            raise ConfigError(f"{where}.missing_gallery", missing, "'fail' or 'skip'")
        views = spec.get("views")
        return cls(
            name=name,
            gallery=_query(spec["gallery"], f"{where}.gallery"),
            probes={str(c): _query(q, f"{where}.probes.{c}") for c, q in spec["probes"].items()},
            exclude_identical_view=bool(spec["exclude_identical_view"]),
            missing_gallery=missing,
            views=None if views is None else [str(v) for v in views],
        )

    def resolve_views(self, meta: pd.DataFrame) -> list[str]:
        """The ordered view labels this protocol scores on ``meta``."""
        return list(self.views) if self.views is not None else sorted(meta["view"].astype(str).unique())

    def for_split(self, split: str) -> Protocol:
        """The protocol as it scores ``split``: the same queries on validation and test subjects."""
        return self


@dataclass(frozen=True)
class RetrievalProtocol:
    """Every probe ranked against the whole gallery (``kind: retrieval``; docs/protocols-retrieval.md).

    gallery: a query, or ``None`` for every sequence of the split that is not a probe (``gallery: others``).
    ranks: the rank-k accuracies reported (k = 1 is the selection metric, ``mean_rank1``).
    missing_gallery: "fail" counts a probe without any true match in the gallery as a miss (GREW);
    "skip" leaves it out of every mean (Gait3D's benchmark code).
    submission: also list each probe's 20 nearest gallery identities (GREW's server takes that CSV).
    val: how the validation split is scored, whose subjects hold other sequences than the test ones (GREW's
    and Gait3D's training ids): a protocol with its own gallery/probes/missing_gallery, ``None`` = these
    queries as they are, ``False`` = not scored on validation.
    """

    name: str
    probes: dict[str, list[Any]]
    gallery: dict[str, list[Any]] | None = None
    ranks: tuple[int, ...] = (1, 5, 10, 20)
    missing_gallery: MissingGallery = "fail"
    submission: bool = False
    val: RetrievalProtocol | bool | None = None

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any], val_of: bool = False) -> RetrievalProtocol:
        """Build from one ``kind: retrieval`` entry of a dataset config's ``protocols:`` mapping."""
        key = f"dataset.protocols.{name}" + (".val" if val_of else "")
        allowed = _RETRIEVAL_KEYS - {"kind", "submission", "val"} if val_of else _RETRIEVAL_KEYS
        if set(spec) - allowed or "probes" not in spec:
            raise ConfigError(key, sorted(spec), f"a mapping with probes and some of {sorted(allowed)}")
        gallery = spec.get("gallery", OTHERS)
        ranks = tuple(int(k) for k in spec.get("ranks", cls.ranks))
        if not ranks or min(ranks) < 1 or 1 not in ranks:
            raise ConfigError(f"{key}.ranks", list(ranks), "positive ranks including 1")
        missing = spec.get("missing_gallery", "fail")
        if missing not in ("fail", "skip"):
            raise ConfigError(f"{key}.missing_gallery", missing, "'fail' or 'skip'")
        val = spec.get("val")
        if isinstance(val, Mapping):
            val = cls.from_config(name, {"ranks": list(ranks), **val}, val_of=True)
        elif val not in (None, False):
            raise ConfigError(f"{key}.val", val, "a mapping with gallery/probes, false (not scored) or null")
        return cls(
            name=name,
            probes=_query(spec["probes"], f"{key}.probes"),
            gallery=None if gallery == OTHERS else _query(gallery, f"{key}.gallery"),
            ranks=ranks,
            missing_gallery=missing,
            submission=bool(spec.get("submission", False)),
            val=val,
        )

    def for_split(self, split: str) -> RetrievalProtocol | None:
        """The protocol as it scores ``split`` ("val" or "test"); ``None`` when it does not score it."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, found {split!r}")
        if split == "test" or self.val is None:
            return self
        return self.val or None


AnyProtocol = Protocol | RetrievalProtocol


def load_protocols(specs: Mapping[str, Mapping[str, Any]]) -> dict[str, AnyProtocol]:
    """All protocols of a dataset config's ``protocols:`` mapping, in config order."""
    out: dict[str, AnyProtocol] = {}
    for name, spec in plain(specs).items():
        kind = spec.get("kind", "per_view") if isinstance(spec, dict) else None
        if kind == "retrieval":
            out[str(name)] = RetrievalProtocol.from_config(str(name), spec)
        elif kind == "per_view":
            out[str(name)] = Protocol.from_config(str(name), {k: v for k, v in spec.items() if k != "kind"})
        else:
            raise ConfigError(f"dataset.protocols.{name}.kind", kind, "per_view (the default) or retrieval")
    return out


def select(meta: pd.DataFrame, query: Mapping[str, list[Any]], what: str) -> np.ndarray:
    """Boolean mask of the ``meta`` rows matching ``query``; raises if it matches nothing.

    Query values are cast to the column's type so that YAML ints/strings compare as the data does.
    """
    mask = np.ones(len(meta), dtype=bool)
    for col, allowed in query.items():
        if col not in meta.columns:
            raise ConfigError(
                what, dict(query), f"a query of metadata columns {list(meta.columns)} (no column '{col}')"
            )
        column = meta[col]
        mask &= column.isin(_cast(allowed, column, what, col)).to_numpy()
    if not mask.any():
        found = {col: sorted(map(str, meta[col].unique()))[:20] for col in query}
        raise ConfigError(what, dict(query), f"a query that matches some sequence; values present: {found}")
    return mask


def _cast(values: list[Any], column: pd.Series, what: str, col: str) -> list[Any]:
    if pd.api.types.is_integer_dtype(column):
        try:
            return [int(v) for v in values]
        except (TypeError, ValueError) as err:
            raise ConfigError(what, values, f"integers (column '{col}' holds integers)") from err
    return [str(v) for v in values]


def _query(query: Any, what: str) -> dict[str, list[Any]]:
    if not isinstance(query, dict):
        raise ConfigError(what, query, "a mapping column -> list of values")
    out = {}
    for col, values in query.items():
        out[str(col)] = list(values) if isinstance(values, (list, tuple)) else [values]
    return out
