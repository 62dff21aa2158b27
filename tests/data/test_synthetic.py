"""Synthetic generator: formats, identity signal, CLI."""

from __future__ import annotations

import numpy as np

from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.synthetic import format_rows, generate_casia_b, generate_oumvlp

from ..conftest import run_app, run_console


def test_format_rows_matches_python_formatting():
    rng = np.random.default_rng(0)
    values = rng.uniform(-500, 1500, (200, 7)).astype(np.float32)
    values[0, :3] = [0.0, -0.0002, 9.9996]
    names = np.array([f"./001-nm-01-000/{i:06d}.jpg" for i in range(200)])
    text = format_rows(names, values).decode()
    expected = "".join(n + "".join(f",{float(v):.3f}" for v in row) + "\n" for n, row in zip(names, values))
    assert text == expected.replace("-0.000", "0.000")


def test_same_seed_same_bytes_and_identity_signal(tmp_path):
    kw = dict(n_subjects=4, n_views=3, frames=30, seed=5)
    a = generate_casia_b(tmp_path / "a.csv", **kw)
    b = generate_casia_b(tmp_path / "b.csv", **kw)
    assert a.read_bytes() == b.read_bytes()
    poses = CasiaBReader(tmp_path, file="a.csv").read()
    meta = poses.meta
    # identity: mean side-view leg length (hip-ankle, pixels) is nearer within a subject than across
    side = (meta.view == "036") & (meta.condition == "nm")
    legs = {}
    for i in np.flatnonzero(side.to_numpy()):
        s = poses.sequence(i)
        legs.setdefault(meta.subject[i], []).append(np.linalg.norm(s[:, 11, :2] - s[:, 15, :2], axis=1).mean())
    spread_within = np.mean([np.std(v) for v in legs.values()])
    spread_across = np.std([np.mean(v) for v in legs.values()])
    assert spread_across > 2 * spread_within


def test_conditions_change_the_walker(tmp_path):
    generate_casia_b(tmp_path / "c.csv", n_subjects=2, n_views=11, frames=60, drop_prob=0.0, seed=1)
    poses = CasiaBReader(tmp_path, file="c.csv").read()
    side = poses.meta.view == "090"

    def right_wrist_travel(cond):
        rows = np.flatnonzero((side & (poses.meta.condition == cond)).to_numpy())
        return np.mean([np.ptp(poses.sequence(i)[:, 10, 0] - poses.sequence(i)[:, 6, 0]) for i in rows])

    assert right_wrist_travel("bg") < 0.5 * right_wrist_travel("nm")


def test_oumvlp_refuses_to_overwrite(tmp_path):
    root = generate_oumvlp(tmp_path / "ou", n_subjects=1, n_views=1, frames=5)
    try:
        generate_oumvlp(root, n_subjects=1, n_views=1, frames=5)
    except FileExistsError:
        pass
    else:
        raise AssertionError("expected FileExistsError")
    assert (root / "ID_list.csv").is_file()


def test_console_script_writes_both_formats(tmp_path):
    """``gaitgraph-synthetic`` in a new process: the smoke test of the console script."""
    out = tmp_path / "syn"
    done = run_console(
        "gaitgraph-synthetic",
        [
            "format=both",
            f"out_dir={out}",
            "casia_b.n_subjects=1",
            "casia_b.n_views=2",
            "casia_b.frames=10",
            "oumvlp.n_subjects=1",
            "oumvlp.n_views=1",
            "oumvlp.frames=5",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(CasiaBReader(out / "casia-b").read()) == 10 * 2
    assert (out / "oumvlp" / "ID_list.csv").is_file()
    assert {p.name for p in (out / "oumvlp").iterdir()} == {"openpose", "alphapose", "ID_list.csv"}


def test_cli_writes_the_pickle_layouts(tmp_path):
    out = tmp_path / "syn"
    done = run_app(
        "gaitgraph.data.synthetic",
        [
            "format=all",
            f"out_dir={out}",
            "casia_b.n_subjects=1",
            "casia_b.n_views=1",
            "casia_b.frames=10",
            "oumvlp.n_subjects=1",
            "oumvlp.n_views=1",
            "oumvlp.frames=5",
            "casia_b_pkl.n_subjects=1",
            "casia_b_pkl.n_views=2",
            "casia_b_pkl.frames=10",
            "grew.n_train=2",
            "grew.n_test=1",
            "gait3d.n_subjects=4",
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((out / "casia-b-pkl").rglob("*.pkl"))) == 10 * 2
    assert (out / "grew" / "GREW.json").is_file() and (out / "grew" / "probe" / "03").is_dir()
    assert (out / "gait3d" / "Gait3D.json").is_file() and len(list((out / "gait3d").glob("000[0-3]"))) == 4
