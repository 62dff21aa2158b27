"""``python -m gaitgraph.visualize ckpt_path=...``: class-activation GIFs (docs/original-network.md#activation-maps).

For each chosen test sequence the model sees its test-time window (reflect-padded, centre crop of
``dataset.sequence_length`` frames); every window frame is drawn with each joint coloured and sized by its
activation (:mod:`gaitgraph.evaluation.activations`). Output:
``<run dir>/activations/{subject}-{view}-{condition}-{seq}.gif`` (the condition is part of the name because e.g.
CASIA-B's bg-01 and nm-01 share subject, view and seq), and with ``png=true`` every frame as
``activations/png/{same stem}-{t:03d}.png``. Files appear complete or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gaitgraph.process_env  # noqa: F401 - sets the process environment before torch loads

from omegaconf import DictConfig, OmegaConf

from gaitgraph.cli import entry
from gaitgraph.errors import ConfigError, short_repr
from gaitgraph.progress import progress
from gaitgraph.utils import run_dir_of

# torch, matplotlib and the modules that draw load in the functions that use them, when the task runs: --help,
# --cfg and shell completion import this file and answer at once (benchmarks/startup.py).
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

SELECT_KEYS = ("subject", "view", "condition", "seq")


def select_sequences(meta: pd.DataFrame, select: dict[str, Any]) -> np.ndarray:
    """Row indices of ``meta`` matching every non-null ``select`` filter (a value or a list), at most ``limit``."""
    import numpy as np
    import pandas as pd

    unknown = set(select) - {*SELECT_KEYS, "limit"}
    if unknown:
        raise ConfigError(
            f"select.{sorted(unknown)[0]}",
            select[sorted(unknown)[0]],
            f"a key of select: {', '.join([*SELECT_KEYS, 'limit'])}",
        )
    mask = np.ones(len(meta), dtype=bool)
    for key in SELECT_KEYS:
        wanted = select.get(key)
        if wanted is None:
            continue
        wanted = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        column = meta[key]
        cast = int if pd.api.types.is_integer_dtype(column) else str
        try:
            values = [cast(w) for w in wanted]
        except ValueError:
            raise ConfigError(f"select.{key}", wanted, f"integers (the test split's {key} values)") from None
        mask &= column.isin(values).to_numpy()
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        present = {k: sorted(map(str, meta[k].unique()))[:20] for k in SELECT_KEYS}
        raise ConfigError(
            "select", dict(select), f"a choice matching a test sequence; present: {short_repr(present, 200)}"
        )
    limit = select.get("limit")
    return rows[: int(limit)] if limit else rows


def visualize(cfg: DictConfig, overrides: Sequence[str] | None = None) -> list[Path]:
    """Draw the activation GIF of every selected test sequence; return the GIF paths."""
    from gaitgraph.engine.restore import load_run
    from gaitgraph.evaluation.activations import bones, draw_frames, sequence_activations, write_gif, write_png
    from gaitgraph.evaluation.embed import eval_length

    run = load_run(cfg, overrides)
    meta = run.test.meta
    chosen = select_sequences(meta, OmegaConf.to_container(cfg.select, resolve=True))
    out_dir = run_dir_of(cfg) / "activations"
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.png:
        (out_dir / "png").mkdir(exist_ok=True)
    pairs = bones(run.skeleton)
    length = eval_length(run.dataset_cfg)
    written = []
    batch = int(cfg.trainer.eval_batch_size)
    for start in progress(range(0, len(chosen), batch), desc="activations", unit="batch"):
        idx = chosen[start : start + batch]
        windows, activation, source = sequence_activations(run.model, run.test, idx, run.skeleton, length, run.device)
        for i, row in enumerate(idx):
            m = meta.iloc[row]
            stem = f"{int(m.subject):03d}-{m.view}-{m.condition}-{int(m.seq):02d}"
            titles = [f"{m.subject}, {m.view}, {m.condition}-{m.seq}, frame {f}" for f in source[i]]
            frames = draw_frames(windows[i], activation[i], pairs, titles, size_px=cfg.size_px, extent=cfg.extent)
            write_gif(frames, out_dir / f"{stem}.gif", duration_ms=cfg.duration_ms)
            if cfg.png:
                for t, frame in enumerate(frames):
                    write_png(frame, out_dir / "png" / f"{stem}-{t:03d}.png")
            written.append(out_dir / f"{stem}.gif")
    log.info("wrote %d GIFs to %s", len(written), out_dir)
    print(f"wrote {len(written)} activation GIFs to {out_dir}")
    return written


@entry("visualize")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    visualize(cfg)


if __name__ == "__main__":
    main()
