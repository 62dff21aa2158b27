"""``gaitgraph.predict``: enrol pose files, identify others, and agree with ``gaitgraph.evaluate``.

The round trip (the session's trained PsyMo-10 run, tests/conftest.py ``trained_run``): the protocol's gallery
sequences at ONE view G are enrolled by predict from copies of their files; predict then identifies every test
sequence against that gallery. For every probe condition c and probe view p of the protocol, the share of probes
whose top-1 identity is their own subject must equal gaitgraph.evaluate's cell (c, p, G) of eval/results.json
(same counts: correct and total), since that cell ranks the same probes against the same gallery sequences with
the same distance.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from gaitgraph import CONF_DIR, ROOT
from gaitgraph.errors import CheckpointError, ConfigError
from gaitgraph.evaluate import evaluate
from gaitgraph.evaluation.embedding_store import read_embeddings, write_embeddings
from gaitgraph.evaluation.protocols import Protocol, select

from .conftest import TrainedRun, compose_train, run_console
from .no_drawing import skip_drawing
from .predict_runs import run_predict

CPU = ["trainer.device=cpu", "trainer.num_threads=1"]
SKELETONS = ROOT / "data" / "psymo10" / "skeletons"
TEST_SUBJECTS = (6, 7, 8, 9)
VIEW = "00_0"  # the one gallery view G of the round trip


@pytest.fixture
def trained(trained_run: TrainedRun) -> tuple[Path, Path]:
    """(checkpoint, cache dir) of the session's trained PsyMo-10 run."""
    return trained_run.ckpt, trained_run.cache


def _evaluate(run_dir: Path, overrides: list[str]) -> float:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return evaluate(cfg, overrides)


def _predict(run_dir: Path, ckpt: Path, cache: Path, *extra: str) -> dict[str, Path]:
    return run_predict(run_dir, [f"ckpt_path={ckpt}", f"paths.cache_dir={cache}", *CPU], *extra)


def _copy_walks(dest: Path, pattern: str) -> Path:
    """A PsyMo folder (skeletons/<ID>/...) with the test subjects' walk files matching ``pattern``."""
    for subject in TEST_SUBJECTS:
        for walk in (SKELETONS / str(subject)).glob(pattern):
            (dest / "skeletons" / str(subject)).mkdir(parents=True, exist_ok=True)
            shutil.copy2(walk, dest / "skeletons" / str(subject) / walk.name)
    return dest


def _probe_meta(identities: pd.DataFrame) -> pd.DataFrame:
    return identities[[c for c in identities if c.startswith("probe_")]].rename(columns=lambda c: c[6:])


@pytest.mark.slow
def test_identities_from_an_enrolled_view_match_evaluate_cells(tmp_path: Path, trained, monkeypatch):
    skip_drawing(monkeypatch)  # evaluate's heatmap is not looked at (tests/no_drawing.py)
    ckpt, cache = trained
    enrol = _copy_walks(tmp_path / "enrol", f"*_{VIEW}_0_nm.json")  # nm run 0 at view G: the gallery
    probes = _copy_walks(tmp_path / "probes", "*.json")
    gallery = _predict(tmp_path / "enrolled", ckpt, cache, f"input={enrol}")["embeddings"]
    _, gallery_meta, attrs = read_embeddings(gallery)
    assert set(gallery_meta["view"]) == {VIEW} and set(gallery_meta["subject"]) == set(TEST_SUBJECTS)
    assert attrs["ckpt_path"] == str(ckpt.resolve()) and len(attrs["weights_hash"]) == 64
    written = _predict(tmp_path / "identified", ckpt, cache, f"input={probes}", f"gallery={gallery}", "top_k=4")
    identities = pd.read_csv(written["identities"], dtype={"probe_view": str})
    assert list(identities.columns[-8:]) == [f"{k}_{r}" for r in range(1, 5) for k in ("identity", "distance")]
    assert (np.diff(identities[[f"distance_{r}" for r in range(1, 5)]].to_numpy(), axis=1) >= 0).all()

    eval_dir = tmp_path / "evaluate"
    metric = _evaluate(eval_dir, [f"ckpt_path={ckpt}", f"paths.cache_dir={cache}", *CPU, "logger=csv"])
    cells = pd.DataFrame(json.loads((eval_dir / "eval" / "results.json").read_text())["cells"])
    protocol = Protocol.from_config("psymo10", compose_train([]).dataset.protocols.psymo10)
    meta = _probe_meta(identities)
    hit = (identities["identity_1"] == identities["probe_subject"]).to_numpy()
    compared = 0
    for condition, query in protocol.probes.items():
        chosen = select(meta, query, condition)
        for view in sorted(meta["view"].unique()):
            rows = chosen & (meta["view"] == view).to_numpy()
            cell = cells[(cells.condition == condition) & (cells.probe_view == view) & (cells.gallery_view == VIEW)]
            assert (int(hit[rows].sum()), int(rows.sum())) == (cell.correct.item(), cell.total.item()), (
                condition,
                view,
            )
            compared += 1
    assert compared == 7 * 6  # every condition at every probe view
    # gaitgraph.evaluate logs through the chosen logger (job_type eval): metrics.csv holds its metric, in percent
    # like every tracker (evaluate() returns the fraction metrics.json keeps).
    assert pd.read_csv(eval_dir / "metrics.csv")["test/mean_rank1"].tolist() == pytest.approx([100 * metric])
    for name in ("results.md", "paper_table.md", "paper_table.tex"):
        assert (eval_dir / "eval" / name).is_file()


@pytest.mark.slow
def test_split_gallery_equals_the_enrolled_gallery_files(tmp_path: Path, trained):
    """Embedding a dataset split (through the cache) and the same files (through the reader) agree."""
    ckpt, cache = trained
    enrol = _copy_walks(tmp_path / "enrol", "*_0_nm.json")  # nm run 0 at every view: the protocol's gallery
    probes = _copy_walks(tmp_path / "probes", "*_00_1_*.json")  # the 8 walks at view 00_1 (all 7 conditions)
    gallery = _predict(tmp_path / "enrolled", ckpt, cache, f"input={enrol}")["embeddings"]
    from_files = _predict(tmp_path / "files", ckpt, cache, f"input={probes}", f"gallery={gallery}")
    from_split = _predict(tmp_path / "split", ckpt, cache, f"input={probes}", "gallery=split:gallery")
    a, b = pd.read_csv(from_files["identities"]), pd.read_csv(from_split["identities"])
    assert len(a) == len(list(probes.rglob("*.json"))) and len(a.columns) == 6 + 2 * 4  # 4 identities in the gallery
    ids = [f"identity_{r}" for r in range(1, 5)]
    assert (a[ids].to_numpy() == b[ids].to_numpy()).all()
    assert np.allclose(a.filter(like="distance_").to_numpy(), b.filter(like="distance_").to_numpy(), atol=1e-5)
    split_emb, split_meta, _ = read_embeddings(tmp_path / "split" / "gallery.h5")
    file_emb, file_meta, _ = read_embeddings(gallery)
    assert sorted(split_meta["source"]) == sorted(file_meta["source"])
    order = np.argsort(split_meta["source"].to_numpy())
    assert np.allclose(split_emb[order], file_emb[np.argsort(file_meta["source"].to_numpy())], atol=1e-5)


@pytest.mark.slow
def test_errors_name_the_problem(tmp_path: Path, trained):
    ckpt, cache = trained
    walk = next((SKELETONS / "6").glob("*.json"))
    with pytest.raises(ConfigError, match=r"ckpt_path=None: expected a checkpoint file"):
        run_predict(tmp_path / "a", [], f"input={walk}")
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        run_predict(tmp_path / "b", [], f"ckpt_path={bogus}", f"input={walk}")
    with pytest.raises(ConfigError, match=r"input=None: expected pose files or folders"):
        _predict(tmp_path / "c", ckpt, cache)
    # A gallery embedded by another model (other weights) is refused.
    mine = _predict(tmp_path / "d", ckpt, cache, f"input={walk}")["embeddings"]
    emb, meta, attrs = read_embeddings(mine)
    other = write_embeddings(tmp_path / "other.h5", emb, meta, {**attrs, "weights_hash": "0" * 64})
    with pytest.raises(CheckpointError, match=r"embedded by another model or embedding config \(weights_hash differ"):
        _predict(tmp_path / "e", ckpt, cache, f"input={walk}", f"gallery={other}")
    with pytest.raises(ConfigError, match=r"gallery='split:nope': expected split:<train\|val\|test\|gallery>"):
        _predict(tmp_path / "f", ckpt, cache, f"input={walk}", "gallery=split:nope")


@pytest.mark.slow
def test_console_script_identifies_walks_against_the_split_gallery(tmp_path: Path, trained):
    """``gaitgraph-predict`` in a new process (README's last command): the smoke test of the console script."""
    ckpt, cache = trained
    run_dir = tmp_path / "run"
    walks = SKELETONS / "6"
    args = [f"ckpt_path={ckpt}", f"paths.cache_dir={cache}", f"input={walks}", "gallery=split:gallery", "top_k=3"]
    done = run_console("gaitgraph-predict", [*args, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    identities = pd.read_csv(run_dir / "identities.csv")
    assert len(identities) == len(list(walks.glob("*.json"))) and set(identities["probe_subject"]) == {6}
    assert set(identities["identity_1"]) <= set(TEST_SUBJECTS)
