"""Protocol specs from dataset configs, and query selection over metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.errors import ConfigError
from gaitgraph.evaluation.protocols import Protocol, load_protocols, select


def test_psymo10_config_loads() -> None:
    cfg = OmegaConf.load(CONF_DIR / "dataset" / "psymo10.yaml")
    protocols = load_protocols(cfg.protocols)
    p = protocols["psymo10"]
    assert p.gallery == {"condition": ["nm"], "seq": [0]}
    assert list(p.probes) == ["nm", "bg", "cl", "ph", "txt", "wsf", "wss"]
    assert p.exclude_identical_view is True and p.missing_gallery == "fail" and p.views is None


def test_views_order_and_defaults() -> None:
    meta = pd.DataFrame({"view": ["090", "000", "045", "000"]})
    spec = {"gallery": {"seq": [0]}, "probes": {"a": {"seq": [1]}}, "exclude_identical_view": False}
    assert Protocol.from_config("a", spec).resolve_views(meta) == ["000", "045", "090"]
    ordered = Protocol.from_config("a", {**spec, "views": ["090", "000"]})
    assert ordered.resolve_views(meta) == ["090", "000"]


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"gallery": {}, "probes": {"a": {}}}, "missing key 'exclude_identical_view'"),
        ({"gallery": {}, "probes": {}, "exclude_identical_view": True}, "non-empty"),
        (
            {"gallery": {}, "probes": {"a": {}}, "exclude_identical_view": True, "missing_gallery": "drop"},
            "'fail' or 'skip'",
        ),
        ({"gallery": {}, "probes": {"a": {}}, "exclude_identical_view": True, "galery": {}}, "unknown keys"),
        (
            {"gallery": [1], "probes": {"a": {}}, "exclude_identical_view": True},
            r"bad.gallery=\[1\]: expected a mapping",
        ),
    ],
)
def test_bad_specs_name_the_problem(spec: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Protocol.from_config("bad", spec)


def test_select_casts_values_and_reports_misses() -> None:
    meta = pd.DataFrame({"subject": [1, 2], "seq": np.array([1, 5], "int64"), "view": ["000", "018"]})
    assert select(meta, {"seq": ["5"], "view": ["018"]}, "q").tolist() == [False, True]
    with pytest.raises(
        ConfigError,
        match=r"q=\{'view': \[0\]\}: expected a query that matches some sequence; values present: \{'view'",
    ):
        select(meta, {"view": [0]}, "q")  # YAML's unquoted 000 is the int 0: must be quoted
    with pytest.raises(ConfigError, match="no column 'cond'"):
        select(meta, {"cond": ["nm"]}, "q")
    with pytest.raises(ConfigError, match="holds integers"):
        select(meta, {"seq": ["nm"]}, "q")
