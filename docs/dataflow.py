"""Draw docs/dataflow.png, the data-flow picture of docs/design.md: ``python docs/dataflow.py``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a file, never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

OUT = Path(__file__).with_name("dataflow.png")
BOX_W, BOX_H = 3.1, 1.05
#: Fill colour per layer of the package, so the picture also shows who owns each step.
COLOURS = {
    "entry": "#fff4bf",
    "data": "#dbe9f6",
    "models": "#fde3c8",
    "engine": "#e3f1dc",
    "evaluation": "#efe0f3",
    "outputs": "#f2f2f2",
}
ROW = 1.65  # vertical distance between box centres
COLUMNS = [4.1 + 3.8 * i for i in range(5)]  # x of the training and evaluation rows
#: name -> (centre x, centre y, text, layer)
BOXES = {
    "sources": (0, 5 * ROW, "source files\nCASIA-B CSV · PsyMo-10 JSON\nOUMVLP-Pose JSON · synthetic", "data"),
    "reader": (0, 4 * ROW, "reader\ndata/<source>.py\nvalidates every file", "data"),
    "poseset": (0, 3 * ROW, "PoseSet\nframes [F, J, 3] + offsets\n+ meta table", "data"),
    "preprocess": (0, 2 * ROW, "preprocess\njoint layout, normalise", "data"),
    "cache": (0, ROW, "HDF5 cache\nraw + processed,\nkeyed by fingerprint", "data"),
    "split": (0, 0.0, "subject split\ntrain / val / test", "data"),
    "batches": (COLUMNS[0], ROW, "batches\nrandom or P×K windows", "data"),
    "augment": (COLUMNS[1], ROW, "augmentation\nflips, noise, move", "data"),
    "features": (COLUMNS[2], ROW, "input features\njoint · velocity · bone", "models"),
    "model": (COLUMNS[3], ROW, "model\nResGCN → embedding", "models"),
    "loss": (COLUMNS[4], ROW, "SupCon loss\n+ optimizer step", "models"),
    "windows": (COLUMNS[0], 0.0, "centre windows\n(+ TTA variants)", "data"),
    "embed": (COLUMNS[1], 0.0, "model.embed\n(eval mode)", "models"),
    "embeddings": (COLUMNS[2], 0.0, "embeddings\n+ metadata", "evaluation"),
    "protocols": (COLUMNS[3], 0.0, "protocols\ngallery / probes\nrank-1 · mAP", "evaluation"),
    "tables": (COLUMNS[4], 0.0, "tables\nCSV · JSON · heatmap\nW&B · metrics.json", "outputs"),
}
#: (from, to, label, label offset in y); arrows leave and enter boxes on the sides facing each other.
ARROWS = [
    ("sources", "reader", "", 0),
    ("reader", "poseset", "", 0),
    ("poseset", "preprocess", "", 0),
    ("preprocess", "cache", "", 0),
    ("cache", "split", "", 0),
    ("split", "batches", "train", 0.75),
    ("split", "windows", "val / test", -0.38),
    ("batches", "augment", "", 0),
    ("augment", "features", "", 0),
    ("features", "model", "", 0),
    ("model", "loss", "", 0),
    ("windows", "embed", "", 0),
    ("embed", "embeddings", "", 0),
    ("embeddings", "protocols", "", 0),
    ("protocols", "tables", "test", -0.38),
]
ENTRY = (
    "entry points: python -m gaitgraph.train | evaluate | visualize | predict (thin Hydra functions, see cli.py)\n"
    "Hydra composes conf/, typed schemas validate it before any work; outputs go to the run directory"
)
TRAINER = (
    "Trainer (engine/trainer.py): the epoch loop over the training row; callbacks: checkpoint · validation and\n"
    "model selection on the VAL split · SWA · metric logging · progress · non-finite guard.   TrainState: what resume "
    "restores"
)


def draw_box(ax: plt.Axes, x: float, y: float, text: str, layer: str, width: float = BOX_W) -> None:
    """A rounded box centred on (x, y)."""
    ax.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - BOX_H / 2),
            width,
            BOX_H,
            boxstyle="round,pad=0.05,rounding_size=0.15",
            facecolor=COLOURS[layer],
            edgecolor="#444444",
            linewidth=1.1,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=9.5, linespacing=1.35)


def anchor(name: str, towards: str) -> tuple[float, float]:
    """Where an arrow between two boxes touches box ``name``: the side facing the other box."""
    x, y = BOXES[name][:2]
    tx, ty = BOXES[towards][:2]
    if abs(tx - x) >= abs(ty - y):
        return x + (BOX_W / 2 + 0.05) * (1 if tx > x else -1), y
    return x, y + (BOX_H / 2 + 0.05) * (1 if ty > y else -1)


def draw_arrow(ax: plt.Axes, start: str, end: str, label: str, lift: float) -> None:
    """An arrow from box ``start`` to box ``end``, its label ``lift`` above (or below) the middle."""
    (x0, y0), (x1, y1) = anchor(start, end), anchor(end, start)
    bend = "arc3,rad=-0.25" if x0 != x1 and y0 != y1 else "arc3"
    ax.annotate(
        "",
        (x1, y1),
        (x0, y0),
        arrowprops={
            "arrowstyle": "-|>",
            "color": "#333333",
            "linewidth": 1.3,
            "connectionstyle": bend,
            "mutation_scale": 14,
        },
    )
    if label:
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + lift, label, ha="center", va="center", fontsize=9, style="italic")


def main() -> None:
    fig, ax = plt.subplots(figsize=(20, 9.5))
    for x, y, text, layer in BOXES.values():
        draw_box(ax, x, y, text, layer)
    for start, end, label, lift in ARROWS:
        draw_arrow(ax, start, end, label, lift)
    # The engine drives the training row and takes the validation result back for model selection.
    centre, top = (COLUMNS[0] + COLUMNS[-1]) / 2, 2.15 * ROW
    draw_box(ax, centre, top, TRAINER, "engine", width=COLUMNS[-1] - COLUMNS[0] + BOX_W)
    engine = {"color": "#2f6b2f", "linewidth": 1.3}
    below_trainer, above_row = top - BOX_H / 2 - 0.05, ROW + BOX_H / 2 + 0.05
    ax.annotate("", (COLUMNS[2], above_row), (COLUMNS[2], below_trainer), arrowprops={"arrowstyle": "-|>", **engine})
    ax.text(COLUMNS[2] + 0.12, (top + ROW) / 2, "runs every step", fontsize=9, style="italic", color="#2f6b2f")
    gap = (COLUMNS[3] + COLUMNS[4]) / 2  # between the model and loss boxes, from the protocols->tables arrow
    ax.annotate("", (gap, below_trainer), (gap, 0.05), arrowprops={"arrowstyle": "-|>", "linestyle": "--", **engine})
    ax.text(gap + 0.12, (top + ROW) / 2, "val rank-1 selects best.pt", fontsize=9, style="italic", color="#2f6b2f")
    draw_box(ax, centre, 3.6 * ROW, ENTRY, "entry", width=COLUMNS[-1] - COLUMNS[0] + BOX_W)
    ax.annotate(
        "",
        (centre, top + BOX_H / 2 + 0.05),
        (centre, 3.6 * ROW - BOX_H / 2 - 0.05),
        arrowprops={"arrowstyle": "-|>", "color": "#333333", "linewidth": 1.3},
    )
    ax.text(centre + 0.12, (3.6 * ROW + top) / 2, "validated config", fontsize=9, style="italic")
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=c, edgecolor="#444444") for c in COLOURS.values()]
    labels = {"entry": "entry points", "outputs": "run directory"}
    ax.legend(
        handles,
        [labels.get(k, f"gaitgraph/{k}/") for k in COLOURS],
        loc="upper center",
        fontsize=10,
        ncol=len(COLOURS),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
        title="colour = where the step lives",
    )
    ax.text(
        COLUMNS[0] - BOX_W / 2,
        5 * ROW,
        "GaitGraph data flow: source files to tables",
        fontsize=15,
        weight="bold",
        va="center",
    )
    ax.text(
        COLUMNS[0] - BOX_W / 2,
        4.6 * ROW,
        "Read the left column downwards, then the two rows: training above, "
        "evaluation (validation during training, test at the end) below.",
        fontsize=11,
        va="center",
    )
    ax.set_xlim(-1.6, COLUMNS[-1] + 1.6)
    ax.set_ylim(-0.8, 5 * ROW + 0.7)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
