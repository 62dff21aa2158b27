"""The product's headline commands on every dataset source, through the real train(): files generated in the
public formats (CASIA-B CSV, OUMVLP-Pose JSON folders with ID_list.csv, GREW and Gait3D pose pickles with their
split files) since the real sets cannot ship. Short walks and 8-frame windows: the assertions count sequences, cells and
protocols, which the walks' length does not change; no run's pictures are drawn (tests/no_drawing.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import open_dict

from gaitgraph.data.synthetic import generate_casia_b, generate_gait3d, generate_grew, generate_oumvlp
from gaitgraph.train import train

from .conftest import compose_train
from .no_drawing import skip_drawing

# Batches of 16: the smallest training split here (OUMVLP: 3 subjects x 3 views x 2 walks = 18) holds a whole one; a
# batch larger than the split is a config error. One torch thread: trainer.num_threads=auto would give each test
# process every core, and on shared cores the threads' waiting costs more CPU than these small steps (2-3x here).
TINY = [
    "trainer.epochs=1",
    "trainer.batch_size=16",
    "trainer.num_threads=1",
    "logger=none",
    "baseline=false",
    "trainer.device=cpu",
    "dataset.sequence_length=8",
]
#: Mean walk length of the generated trees: more than a window (+-20 %), short enough to write and read in no time.
FRAMES = 12


@pytest.fixture(autouse=True)
def _no_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_drawing(monkeypatch)  # no test here opens a run's heatmap or training curves


@pytest.fixture(scope="module")
def oumvlp_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One OUMVLP-Pose tree (both sources) for both keypoint sources' runs: 10 subjects, ID_list.csv gives 5 train /
    5 test ids."""
    data = tmp_path_factory.mktemp("oumvlp") / "data"
    generate_oumvlp(data / "oumvlp", n_subjects=10, n_views=3, frames=FRAMES, seed=3)
    return data


def _run(tmp_path: Path, overrides: list[str], data: Path | None = None) -> tuple[float, dict]:
    data = data or tmp_path / "data"
    cfg = compose_train([*TINY, f"paths.data_dir={data}", f"paths.cache_dir={tmp_path / 'cache'}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    value = train(cfg)
    return value, json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("source", ["openpose", "alphapose"])
def test_oumvlp_with_its_id_list_split_and_both_protocols(tmp_path: Path, oumvlp_tree: Path, source: str):
    # The 2 highest of the 5 training ids become validation.
    value, metrics = _run(
        tmp_path,
        [
            "dataset=oumvlp",
            f"keypoints={source}",
            "model=resgcn_n51_r4",
            "dataset.reader.workers=0",
            "optimizer=adam_onecycle",
            "dataset.split.val_count=2",
        ],
        oumvlp_tree,
    )
    assert set(metrics["test"]) == {"gaitgraph2", "opengait"}, "OUMVLP must report both protocols"
    assert metrics["metric_protocol"] == "gaitgraph2" and metrics["chance"] == 0.5  # two validation subjects
    assert value == metrics["val"]["gaitgraph2"]["mean_rank1"] * 100, "the objective is read on the validation split"
    for name, included in (("gaitgraph2", False), ("opengait", True)):
        result = metrics["test"][name]
        assert result["views"] == ["000", "015", "030"] and result["exclude_identical_view"] is included
        # 5 test subjects x 3 probe views, each scored against the gallery of all 3 views (the identical one is
        # left out of the means only).
        assert sum(cell["total"] for cell in result["cells"]) == 5 * 3 * 3


@pytest.mark.slow
def test_casia_b_csv(tmp_path: Path):
    generate_casia_b(tmp_path / "data" / "casia-b" / "casia-b_pose_coco.csv", n_subjects=6, n_views=3, frames=FRAMES)
    value, metrics = _run(
        tmp_path,
        [
            "dataset=casia_b",
            "dataset.split.train_subjects=[1,2,3]",
            "dataset.split.val_subjects=[4]",
            "dataset.split.test_subjects=[5,6]",
        ],
    )
    table = metrics["test"]["casia_b"]
    assert table["views"] == ["000", "018", "036"]
    assert {cell["condition"] for cell in table["cells"]} == {"nm", "bg", "cl"}
    # NM#5-6 / BG#1-2 / CL#1-2 of 2 test subjects at 3 probe views, each against the 3 gallery views.
    assert sum(cell["total"] for cell in table["cells"]) == 2 * 3 * (2 + 2 + 2) * 3
    assert value == metrics["val"]["casia_b"]["mean_rank1"] * 100 == 100.0  # one validation subject: always right


@pytest.mark.slow
def test_grew_scores_its_protocol_validates_on_training_ids_and_writes_the_submission(tmp_path: Path):
    root = generate_grew(tmp_path / "data" / "grew", n_train=10, n_test=5, frames=FRAMES)
    value, metrics = _run(
        tmp_path,
        ["dataset=grew", "dataset.split.val_count=3", "dataset.reader.workers=0"],
    )
    test = metrics["test"]
    assert set(test) == {"grew", "grew_submission"} and metrics["metric_protocol"] == "grew"
    assert test["grew"]["n_probes"] == 5
    assert test["grew_submission"]["mean_rank1"] is None  # identities hidden: the server scores the CSV
    assert value == metrics["val"]["grew"]["mean_rank1"] * 100, "the objective is read on the training ids held out"
    rows = (tmp_path / "run" / "eval" / "grew_submission" / "submission.csv").read_text().splitlines()
    probes = (root / "probe_truth.csv").read_text().splitlines()[1:]
    assert rows[0].startswith("videoId,rank1,rank2") and len(rows) == 1 + len(probes)
    assert sorted(r.split(",")[0] for r in rows[1:]) == sorted(p.split(",")[0] for p in probes)


@pytest.mark.slow
def test_gait3d_scores_rank_map_and_minp(tmp_path: Path):
    generate_gait3d(tmp_path / "data" / "gait3d", n_subjects=16, test_fraction=0.25, frames=FRAMES)
    value, metrics = _run(
        tmp_path,
        ["dataset=gait3d", "dataset.split.val_count=2", "dataset.reader.workers=0"],
    )
    result = metrics["test"]["gait3d"]
    assert set(result["ranks"]) == {"1", "5", "10"} and result["n_probes"] == 4
    assert 0.0 < result["mean_inp"] <= 1.0 and 0.0 < result["mean_map"] <= 1.0
    assert value == metrics["val"]["gait3d"]["mean_rank1"] * 100 and metrics["val"]["gait3d"]["n_probes"] == 2
