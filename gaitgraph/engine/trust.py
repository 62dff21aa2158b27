"""A config read from a file is data: check it before anything is built from it (docs/trust.md).

A checkpoint stores the resolved config it was trained with, and ``gaitgraph.evaluate`` / ``predict`` /
``visualize`` rebuild the keypoints, the model and the dataset reader from it. Hydra would build any callable a
``_target_`` names, with any arguments, so a crafted checkpoint could run its author's code
(``torch.load`` of a pickle, ``pathlib.Path.write_text``, ``os.system``). :func:`untrusted_entry` accepts only:

- a ``_target_`` at the places the platform puts one (:data:`TARGETS`), naming a class defined in the platform's
  own package that is a subclass of what belongs there (a :class:`~gaitgraph.skeletons.Skeleton`, a
  :class:`~gaitgraph.models.base.GaitModel`, a :class:`~gaitgraph.data.readers.PoseReader`);
- no other Hydra key (``_partial_``, ``_args_``, ``_recursive_``, ``_convert_``, a nested ``_target_``);
- values that are plain data: None, booleans, numbers, strings without ``${`` (an interpolation would be resolved,
  and a resolver is code), and lists and dicts of those.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from hydra._internal.utils import _locate

from gaitgraph.data.readers import PoseReader
from gaitgraph.errors import CheckpointError, short_repr
from gaitgraph.models.base import GaitModel
from gaitgraph.skeletons import Skeleton

#: Where a stored config may name a class (key path), and the platform base class it must derive from.
TARGETS: dict[tuple[str, ...], type] = {
    ("keypoints",): Skeleton,
    ("model",): GaitModel,
    ("dataset", "reader"): PoseReader,
}
#: The platform's own package: a stored ``_target_`` must be a class defined under it.
PACKAGE = "gaitgraph"
_DOTTED = re.compile(rf"{PACKAGE}(\.[A-Za-z_][A-Za-z0-9_]*)+")
_HYDRA_KEY = re.compile(r"_.*_")


def untrusted_entry(tree: Any, path: tuple[str, ...]) -> tuple[str, str] | None:
    """The first entry of a stored config subtree (at key ``path``) that is not plain data or an allowed
    platform class, as ``(dotted key, what was found)``; None when the whole subtree is safe to build.

    Pure: it reads nothing but ``tree`` (and imports modules of the platform's own package to look a class up).
    """
    if tree is None or isinstance(tree, (bool, int, float)):
        return None
    if isinstance(tree, str):
        return (".".join(path), f"the interpolation {short_repr(tree)}") if "${" in tree else None
    if isinstance(tree, (list, tuple)):
        return next((bad for i, v in enumerate(tree) if (bad := untrusted_entry(v, (*path, str(i))))), None)
    if not isinstance(tree, dict):
        return ".".join(path), f"a {type(tree).__name__} object, not plain data"
    for key, value in tree.items():
        where = (*path, str(key))
        if not isinstance(key, str):
            return ".".join(where), f"the non-string key {short_repr(key)}"
        if key == "_target_" and path in TARGETS:
            bad = _foreign_target(value, TARGETS[path])
        elif _HYDRA_KEY.fullmatch(key):
            bad = f"the Hydra key {key} = {short_repr(value)}"
        else:
            found = untrusted_entry(value, where)
            if found:
                return found
            continue
        if bad:
            return ".".join(where), bad
    return None


def check_stored_config(tree: Any, path: tuple[str, ...], source: str) -> None:
    """Raise a :class:`CheckpointError` naming the key when ``tree`` (the stored config at ``path`` of the file
    ``source``) holds anything :func:`untrusted_entry` refuses; nothing has been built from it then."""
    found = untrusted_entry(tree, path)
    if found is None:
        return
    key, what = found
    raise CheckpointError(
        f"{source}: its stored config holds {what} at config.{key}; a stored config is data and may only name "
        "the platform's own keypoint, model and reader classes with plain values, so nothing was built from it "
        f"and no code ran. If the file comes from someone you trust, choose the group on the command line "
        f"({path[0]}=<option>) to use your own config instead of the stored one (docs/trust.md)."
    )


def _foreign_target(value: Any, base: type) -> str | None:
    """Why ``value`` may not be built where a ``base`` belongs; None when it is a platform subclass of ``base``."""
    found = f"_target_ {short_repr(value)}"
    if not isinstance(value, str) or not _DOTTED.fullmatch(value):
        return f"{found}, which is not a class of the {PACKAGE} package"
    try:
        # The very lookup instantiate does (hydra.utils.get_class would log an error for a non-class); the name
        # starts with the package, so only the platform's own modules get imported.
        cls = _locate(value)
    except Exception:  # noqa: BLE001 - a missing module or attribute: refused the same way
        return f"{found}, which names no class of the {PACKAGE} package"
    own = inspect.isclass(cls) and cls.__module__.split(".")[0] == PACKAGE
    if not own or not issubclass(cls, base):
        return f"{found}, which is not one of the platform's {base.__name__} classes"
    return None
