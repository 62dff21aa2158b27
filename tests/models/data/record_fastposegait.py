"""Record FastPoseGait's own networks for the zoo tests: their state_dict listings and trainable parameter counts
(fastposegait_state_dicts.json, tests/models/test_zoo_models.py) and their embeddings
(fastposegait_embeddings.npz, tests/models/test_zoo_parity.py), both written beside this file.

    python tests/models/data/record_fastposegait.py /path/to/FastPoseGait

Runs FastPoseGait's model and transform code, imported at run time from the given checkout (upstream
BNU-IVC/FastPoseGait at commit UPSTREAM_COMMIT; this file holds none of it), on walking poses in raw pixels and on
weights drawn from a seeded generator (tests/models/zoo_weights.py), once in float64 and once in float32.
The .npz holds, per model option, the poses, the input-BatchNorm running statistics (set to the features' own,
so the networks see unit-scale inputs as after training), the float64 outputs and the largest |float32 - float64|
difference of each output: the reference's own float32 error.

The reference needs a few things this machine lacks or that only matter for its training: torchvision, cv2,
pytorch_metric_learning and einops are replaced by empty stand-in modules, and ``Tensor.cuda`` returns the tensor
itself when CUDA is absent (the networks move their graph tensors with ``.cuda(x.get_device())``).
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from gaitgraph.skeletons import COCO17_JOINTS, OPENPOSE18_JOINTS  # noqa: E402 (a script run from its folder: the path is set just above)
from tests.models.zoo_weights import seeded_state_dict, walking_poses  # noqa: E402

UPSTREAM_COMMIT = "94da9c82df72b94c342ca8c6366e90578ea8e1ae"
SEED = 20240501
N, T = 2, 24
#: model option -> (FastPoseGait config, joint order, evaluation transforms (name, kwargs) without frame selection)
OPTIONS = {
    "gaitgraph1": ("configs/gaitgraph1/gaitgraph1_phase1.yaml", COCO17_JOINTS, [("SkeletonInput", {})]),
    "gaitgraph1_oumvlp": (
        "configs/gaitgraph1/gaitgraph1_phase1_OUMVLP.yaml",
        OPENPOSE18_JOINTS,
        [("SkeletonInput", {})],
    ),
    "gaittr": (
        "configs/gaittr/gaittr.yaml",
        COCO17_JOINTS,
        [("GaitTR_MultiInput", {"joint_format": "coco"}), ("SkeletonInput", {})],
    ),
    "gaittr_oumvlp": (
        "configs/gaittr/gaittr_OUMVLP.yaml",
        OPENPOSE18_JOINTS,
        [("GaitTR_MultiInput", {"joint_format": "alphapose"}), ("SkeletonInput", {})],
    ),
    "gpgait": (
        "configs/gpgait/gpgait.yaml",
        COCO17_JOINTS,
        [("RescaleCenter", {}), ("HOD_MultiInput", {"joint_format": "coco"}), ("SkeletonInput", {})],
    ),
    "gpgait_oumvlp": (
        "configs/gpgait/gpgait_OUMVLP.yaml",
        COCO17_JOINTS,
        [("RescaleCenter", {}), ("HOD_MultiInput", {"joint_format": "coco"}), ("SkeletonInput", {})],
    ),
}
#: Logit columns kept per option (OUMVLP's 5,153 classes would make the file several MB).
LOGIT_CLASSES = 64
MISSING_MODULES = ("torchvision", "cv2", "pytorch_metric_learning", "einops")


class _StandIn(types.ModuleType):
    """An empty module whose every attribute is an empty class."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in MISSING_MODULES:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def import_reference(checkout: Path) -> tuple[types.ModuleType, types.ModuleType]:
    """FastPoseGait's ``modeling.models`` and ``data.transform`` modules from ``checkout``."""
    sys.meta_path.insert(0, _StandInFinder())
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    sys.path.insert(0, str(checkout / "fastposegait"))
    return importlib.import_module("modeling.models"), importlib.import_module("data.transform")


def build_reference(models: types.ModuleType, model_cfg: dict) -> torch.nn.Module:
    """The reference network as its BaseModel builds and initialises it, without data loaders or DDP."""
    cls = getattr(models, model_cfg["model"])
    net = cls.__new__(cls)
    torch.nn.Module.__init__(net)
    net.build_network(model_cfg)
    net.init_parameters()
    net.zero_init_lastBN()
    # A dtype move gives every parameter its own storage, as the reference's move to the GPU does: GPGait builds
    # all PA tensors of a branch on one storage, and loading without this step would give each of them the last.
    return net.to(torch.float64)


def input_statistics(option: str, x: np.ndarray) -> dict[str, torch.Tensor]:
    """Running statistics of each input BatchNorm from the features x (N, C, T, V, 1) it normalises."""

    def per_joint_channel(name: str, part: np.ndarray) -> dict[str, torch.Tensor]:
        flat = part[..., 0].transpose(0, 3, 1, 2).reshape(part.shape[0], -1, part.shape[2])  # feature v*C + c
        return {
            f"{name}.running_mean": torch.from_numpy(flat.mean(axis=(0, 2))),
            f"{name}.running_var": torch.from_numpy(np.maximum(flat.var(axis=(0, 2)), 1e-3)),
        }

    if option.startswith("gaitgraph1"):
        return {
            "ResGCN.head.0.bn.running_mean": torch.from_numpy(x.mean(axis=(0, 2, 3, 4))),
            "ResGCN.head.0.bn.running_var": torch.from_numpy(x.var(axis=(0, 2, 3, 4))),
        }
    if option.startswith("gaittr"):
        return per_joint_channel("data_bn", x)
    return {
        **per_joint_channel("pose.data_bn", x[:, 0:2]),
        **per_joint_channel("bone.data_bn", x[:, 2:4]),
        **per_joint_channel("angle.data_bn", x[:, 4:5, :, 5:]),
    }


def outputs(net: torch.nn.Module, x: np.ndarray, dtype: torch.dtype) -> dict[str, np.ndarray]:
    """The reference's evaluation outputs on features x, in ``dtype``."""
    inputs = ([torch.from_numpy(x).to(dtype)], torch.zeros(len(x), dtype=torch.long), None, None, None)
    with torch.no_grad():
        ret = net.to(dtype).eval()(inputs)
    out = {"embedding": ret["inference_feat"]["embeddings"]}
    if "softmax" in ret["training_feat"]:  # GPGait: the head's part embedding and the BNNeck logits
        out["part_embedding"] = ret["training_feat"]["triplet"]["embeddings"]
        out["logits"] = ret["training_feat"]["softmax"]["logits"][:, :LOGIT_CLASSES]
    return {k: v.double().numpy() for k, v in out.items()}


def record(checkout: Path, out_dir: Path) -> None:
    models, transforms = import_reference(checkout)
    data: dict[str, np.ndarray] = {"seed": np.array(SEED), "upstream_commit": np.array(UPSTREAM_COMMIT)}
    listings: dict[str, object] = {"upstream_commit": UPSTREAM_COMMIT}
    for i, (option, (cfg_path, joints, steps)) in enumerate(OPTIONS.items()):
        model_cfg = yaml.safe_load((checkout / cfg_path).read_text())["model_cfg"]
        poses = walking_poses(joints, N, T, SEED + i)
        chain = [getattr(transforms, name)(**kwargs) for name, kwargs in steps]
        x = np.asarray([_apply(chain, seq.astype(np.float64)) for seq in poses])  # (N, C, T, V, 1), as there
        net = build_reference(models, model_cfg)
        listing = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
        listings[option] = {
            "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "state_dict": listing,
        }
        state = {**net.state_dict(), **seeded_state_dict(listing, SEED), **input_statistics(option, x)}
        net.load_state_dict(state)
        reference = outputs(copy.deepcopy(net), x, torch.float64)
        single = outputs(net, x.astype(np.float32), torch.float32)
        data[f"{option}/poses"] = poses
        for key, value in input_statistics(option, x).items():
            data[f"{option}/override/{key}"] = value.numpy()
        for key, value in reference.items():
            data[f"{option}/{key}"] = value
            data[f"{option}/{key}_f32_error"] = np.array(np.abs(single[key] - value).max())
        print(
            f"{option}: "
            + ", ".join(f"{k} {v.shape} f32 error {np.abs(single[k] - v).max():.2e}" for k, v in reference.items())
        )
    np.savez_compressed(out_dir / "fastposegait_embeddings.npz", **data)
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in listings.items()]
    (out_dir / "fastposegait_state_dicts.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")


def _apply(chain: list, seq: np.ndarray) -> np.ndarray:
    for step in chain:
        seq = step(seq.copy())
    return seq


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: " + __doc__.splitlines()[4].strip())
    record(Path(sys.argv[1]), Path(__file__).parent)
