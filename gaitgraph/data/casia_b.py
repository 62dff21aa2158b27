"""CASIA-B HRNet COCO-17 poses: ``casia-b_pose_coco.csv`` from GaitGraph release v0.1 (docs/formats.md#casia-b).

One header row, then one row per frame: ``image_name`` plus ``{joint}_x, _y, _conf`` for the 17
COCO joints; ``image_name`` = ``./{subject:03d}-{condition}-{seq:02d}-{view:03d}/{frame:06d}.jpg``.
Built for the full 1.36 M-row file: pandas' C parser with float32 dtypes, image names parsed on
their unique folder and frame parts, sequences cut with numpy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.readers import PoseReader, check_values, plain_name, special_kind
from gaitgraph.errors import DatasetFormatError
from gaitgraph.progress import progress
from gaitgraph.skeletons import COCO17_JOINTS

VALUE_COLUMNS = tuple(f"{j}_{c}" for j in COCO17_JOINTS for c in ("x", "y", "conf"))
COLUMNS = ("image_name",) + VALUE_COLUMNS
#: Sequence numbers per walking condition.
CONDITION_SEQS = {"nm": range(1, 7), "bg": range(1, 3), "cl": range(1, 3)}
VIEWS = tuple(f"{v:03d}" for v in range(0, 181, 18))
_FOLDER = re.compile(r"^(?:\./)?(\d{3})-([a-z]+)-(\d{2})-(\d{3})/$")
_FRAME = re.compile(r"^(\d+)\.jpg$")
_IMAGE_NAME = "./{subject:03d}-{condition}-{seq:02d}-{view:03d}/{frame:06d}.jpg, e.g. ./001-bg-01-000/000001.jpg"
_CHUNK_ROWS = 100_000


class CasiaBReader(PoseReader):
    """All sequences of the CASIA-B pose CSV.

    Meta: subject, condition (nm/bg/cl), seq (1-6 for nm, 1-2 for bg/cl), view ("000".."180"),
    source = the image folder (``001-bg-01-000``). Frames keep CSV order (sorted paths; rows
    that are not sorted are sorted stably by folder and frame number). Frame gaps stay.
    """

    label = "CASIA-B"
    hint = (
        "download data.zip from the GaitGraph GitHub release v0.1 (github.com/tteepe/GaitGraph/releases) "
        "and unpack casia-b_pose_coco.csv into dataset.reader.root (default ${paths.data_dir}/casia-b), "
        "or generate a synthetic one: python -m gaitgraph.data.synthetic"
    )

    def __init__(
        self,
        root: str | Path,
        file: str = "casia-b_pose_coco.csv",
        min_frames: int = 1,
        short_policy: str = "drop",
    ) -> None:
        super().__init__(root, min_frames, short_policy)
        self.path = self.root / plain_name(file, "dataset.reader.file")

    def files(self) -> list[Path]:
        if not self.path.exists():
            raise DatasetFormatError(self.path, "file", "the CASIA-B pose CSV", "no such file", self.hint)
        if not self.path.is_file():  # a FIFO would block the read for ever
            found = "a folder" if self.path.is_dir() else special_kind(self.path)
            raise DatasetFormatError(self.path, "file", "the CASIA-B pose CSV as a regular file", found)
        return [self.path]

    def source_path(self, source: str) -> Path:
        return self.path

    def read(self) -> PoseSet:
        path = self.files()[0]
        if path.stat().st_size == 0:
            raise DatasetFormatError(path, "file", "a header row and one row per frame", "an empty file")
        try:
            self._check_header(path)
            names, values = self._parse(path)
        except UnicodeDecodeError as e:
            raise _not_utf8(path) from e
        if len(names) == 0:
            raise DatasetFormatError(path, "line 2", "one row per frame after the header", "no data rows")
        # Names end in a fixed-width frame part ("000001.jpg"): slice, then parse only the unique
        # folders ("./001-bg-01-000/") and frame names. A name of any other form fails a pattern.
        folder_code, folders = pd.factorize(names.str.slice(0, -10), sort=True)
        frame_code, frame_names = pd.factorize(names.str.slice(-10))
        meta = self._folder_meta(path, names, folders, folder_code)
        frame_num = self._frame_numbers(path, names, frame_names, frame_code)
        frame_num, folder_code, values, order = _sorted_by_sequence(frame_num, folder_code, values)
        _check_unique_frames(path, names, frame_num, folder_code, order)

        starts = np.flatnonzero(np.diff(folder_code, prepend=-1))
        offsets = np.append(starts, len(folder_code)).astype(np.int64)
        present = folder_code[starts]
        meta = meta.iloc[present].reset_index(drop=True)
        meta["n_frames"] = np.diff(offsets)
        poses = PoseSet(values.reshape(-1, len(COCO17_JOINTS), 3), offsets, meta)
        return self.apply_short_policy(poses)

    def _check_header(self, path: Path) -> None:
        header = list(pd.read_csv(path, nrows=0).columns)
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            unknown = [c for c in header if c not in COLUMNS]
            found = f"no column(s) {', '.join(missing)}"
            if unknown:
                found += f"; unexpected column(s) {', '.join(unknown)} (renamed?)"
            raise DatasetFormatError(
                path, "header (line 1)", "image_name and {joint}_x/_y/_conf for the 17 COCO joints", found
            )

    def _parse(self, path: Path) -> tuple[pd.Series, np.ndarray]:
        """Image names and float32 values ``[N, 51]``, read in chunks (bounded memory, progress)."""
        dtypes = {"image_name": str} | {c: np.float32 for c in VALUE_COLUMNS}
        names, blocks = [], []
        with progress(total=_estimate_rows(path), desc=f"Reading {self.label}", unit="row", unit_scale=True) as bar:
            # No usecols: with it the parser would silently skip extra fields in a malformed row.
            reader = pd.read_csv(path, dtype=dtypes, engine="c", index_col=False, chunksize=_CHUNK_ROWS)
            first_row = 0
            # A value beyond float32 parses to inf with numpy's overflow warning; _check_values names it instead.
            try:
                with np.errstate(over="ignore"):
                    for chunk in reader:
                        names.append(chunk["image_name"])
                        block = chunk[list(VALUE_COLUMNS)].to_numpy(np.float32)
                        _check_values(path, block, chunk["image_name"], first_row)
                        blocks.append(block)
                        first_row += len(chunk)
                        bar.total = max(bar.total, first_row)
                        bar.update(len(chunk))
            except DatasetFormatError:
                raise
            except ValueError as e:
                if isinstance(e, pd.errors.ParserError):
                    raise DatasetFormatError(path, "CSV", "52 comma-separated fields per row", str(e)) from e
                raise self._non_numeric(path, first_row) from e
            finally:
                reader.close()
        if not blocks:
            return pd.Series([], dtype=str), np.zeros((0, len(VALUE_COLUMNS)), np.float32)
        all_names = pd.concat(names, ignore_index=True)
        missing = all_names.isna().to_numpy()
        if missing.any():
            row = int(np.argmax(missing))
            raise DatasetFormatError(path, f"line {row + 2} image_name", _IMAGE_NAME, "an empty value")
        return all_names, np.concatenate(blocks)

    def _non_numeric(self, path: Path, first_row: int) -> DatasetFormatError:
        """Locate the first non-numeric value at or after data row ``first_row`` (error path only)."""
        chunk = pd.read_csv(path, dtype=str, index_col=False, skiprows=range(1, first_row + 1), nrows=_CHUNK_ROWS)
        for col in VALUE_COLUMNS:
            raw = chunk[col]
            bad = pd.to_numeric(raw, errors="coerce").isna() & raw.notna()
            if bad.any():
                i = int(np.argmax(bad.to_numpy()))
                return DatasetFormatError(path, f"line {first_row + i + 2} column {col}", "a number", repr(raw.iloc[i]))
        return DatasetFormatError(
            path, f"rows from line {first_row + 2}", "numbers in every joint column", "a value that is not a number"
        )

    def _folder_meta(self, path: Path, names: pd.Series, folders: pd.Index, codes: np.ndarray) -> pd.DataFrame:
        parts = pd.Series(folders).str.extract(_FOLDER)
        rows = []
        for k, (folder, (subject, cond, seq, view)) in enumerate(zip(folders, parts.itertuples(index=False))):
            problem = None
            if not isinstance(subject, str):
                problem = ("image_name", _IMAGE_NAME)
            elif cond not in CONDITION_SEQS:
                problem = ("image_name condition", "one of nm, bg, cl")
            elif int(seq) not in CONDITION_SEQS[cond]:
                seqs = CONDITION_SEQS[cond]
                problem = ("image_name sequence", f"{seqs.start:02d}-{seqs.stop - 1:02d} for condition {cond}")
            elif view not in VIEWS:
                problem = ("image_name view", f"one of {', '.join(VIEWS)}")
            if problem:
                row = _first(codes, k)
                raise DatasetFormatError(path, f"line {row + 2} {problem[0]}", problem[1], repr(names.iloc[row]))
            rows.append(
                {
                    "subject": int(subject),
                    "condition": cond,
                    "seq": int(seq),
                    "view": view,
                    "source": folder.removeprefix("./").removesuffix("/"),
                }
            )
        return pd.DataFrame(rows)

    def _frame_numbers(self, path: Path, names: pd.Series, frame_names: pd.Index, codes: np.ndarray) -> np.ndarray:
        numbers = np.zeros(len(frame_names), dtype=np.int64)
        for k, name in enumerate(frame_names):
            m = _FRAME.match(name)
            if m is None:
                row = _first(codes, k)
                raise DatasetFormatError(path, f"line {row + 2} image_name", _IMAGE_NAME, repr(names.iloc[row]))
            numbers[k] = int(m.group(1))
        return numbers[codes]


def _estimate_rows(path: Path) -> int:
    """Row count from the file size and the first data row's length (for the progress bar)."""
    with path.open("rb") as f:
        f.readline()
        line = f.readline()
    return max(1, round(path.stat().st_size / max(len(line), 1)))


def _not_utf8(path: Path) -> DatasetFormatError:
    """The first line holding bytes that are not UTF-8, with its column and the byte (error path only)."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                column = line[: e.start].count(b",")
                name = COLUMNS[column] if column < len(COLUMNS) else f"field {column + 1}"
                field = line.split(b",")[column].strip().decode("utf-8", "backslashreplace")
                return DatasetFormatError(
                    path,
                    f"line {number} column {name}",
                    "UTF-8 text",
                    f"the byte 0x{line[e.start]:02x} in '{field}'",
                )
    return DatasetFormatError(path, "file", "UTF-8 text", "bytes that are not UTF-8")


def _first(codes: np.ndarray, k: int) -> int:
    return int(np.argmax(codes == k))


def _check_values(path: Path, block: np.ndarray, names: pd.Series, first_row: int) -> None:
    """Empty cells, and values that are not finite or out of range (1e300 parses to inf in float32)."""

    def where(i: int, j: int) -> str:
        return f"line {first_row + i + 2} column {VALUE_COLUMNS[j]} ({names.iloc[i]})"

    empty = np.isnan(block)
    if empty.any():
        i, j = (int(v) for v in np.argwhere(empty)[0])
        raise DatasetFormatError(path, where(i, j), "a number", "an empty value")
    check_values(block, path, where)


def _sorted_by_sequence(
    frame_num: np.ndarray, folder_code: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows ordered by (folder, frame), stably; ``order`` maps back to file rows (None: already sorted)."""
    d_folder = np.diff(folder_code)
    in_order = (d_folder > 0) | ((d_folder == 0) & (np.diff(frame_num) >= 0))
    if in_order.all():
        return frame_num, folder_code, values, None
    order = np.lexsort((frame_num, folder_code))
    return frame_num[order], folder_code[order], values[order], order


def _check_unique_frames(
    path: Path, names: pd.Series, frame_num: np.ndarray, folder_code: np.ndarray, order: np.ndarray | None
) -> None:
    dup = np.flatnonzero((np.diff(folder_code) == 0) & (np.diff(frame_num) == 0))
    if len(dup):
        a, b = int(dup[0]), int(dup[0]) + 1
        if order is not None:
            a, b = sorted((int(order[a]), int(order[b])))
        raise DatasetFormatError(
            path,
            f"line {b + 2} image_name",
            "each frame of a sequence once",
            f"{names.iloc[b]!r} again (also on line {a + 2})",
        )
