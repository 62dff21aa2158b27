"""The fast ResGCN (channels_last, batched graph matmul, in-place ops, BN folding) against a plain reference.

The reference re-runs the GaitGraph2 maths on a deep copy of the same model with NCHW tensors, an einsum over
the adjacency and out-of-place ops, calling the copy's own layers. Training (outputs, gradients, BatchNorm
running statistics) is compared in float64, where the maths must agree to ~1e-10 (in float32 the deep BatchNorm
stack amplifies rounding of any reordering to ~1e-3 in some gradients); inference is compared in float32.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from gaitgraph.engine.recompute import recompute_activations
from gaitgraph.models.resgcn import (
    ResGCN,
    ResGCNModule,
    SpatialBasicBlock,
    TemporalBasicBlock,
)

TOL = {"rtol": 1e-4, "atol": 1e-4}
TOL64 = {"rtol": 1e-9, "atol": 1e-10}


def _ref_graph_conv(conv, x, A):
    k = conv.partitions
    y = conv.gcn(x)
    n, kc, t, v = y.shape
    return torch.einsum("nkctv,kvw->nctw", y.view(n, k, kc // k, t, v), A[:k])


def _ref_spatial(block, x, A):
    if isinstance(block, SpatialBasicBlock):
        y = block.bn(_ref_graph_conv(block.conv, x, A))
    else:
        y = F.relu(block.bn_down(block.conv_down(x)))
        y = F.relu(block.bn(_ref_graph_conv(block.conv, y, A)))
        y = block.bn_up(block.conv_up(y))
    if block.residual is not None:
        y = y + block.residual(x)
    return F.relu(y)


def _ref_temporal(block, x, res_module):
    if isinstance(block, TemporalBasicBlock):
        y = block.bn(block.conv(x))
    else:
        y = F.relu(block.bn_down(block.conv_down(x)))
        y = F.relu(block.bn(block.conv(y)))
        y = block.bn_up(block.conv_up(y))
    if block.residual is not None:
        y = y + block.residual(x)
    if res_module is not None:
        y = y + res_module
    return F.relu(y)


def _ref_module(module: ResGCNModule, x, A):
    res_module = module.residual(x) if module.residual is not None else None
    y = _ref_temporal(module.tcn, _ref_spatial(module.scn, x, A * module.edge), res_module)
    return module.att(y) if module.att is not None else y


def _ref_forward(model: ResGCN, x):
    x = x.permute(0, 3, 4, 1, 2).contiguous()
    outs = []
    for i, branch in enumerate(model.input_branches):
        y = branch.bn(x[:, i])
        for layer in branch.layers:
            y = _ref_module(layer, y, branch.A)
        outs.append(y)
    y = torch.cat(outs, dim=1)
    for layer in model.main_stream:
        y = _ref_module(layer, y, model.A)
    return model.fcn(y.mean(dim=(2, 3))), y


def _model(skeleton, kind: str, dtype: torch.dtype = torch.float32) -> ResGCN:
    torch.manual_seed(0)
    if kind == "n21":
        model = ResGCN(skeleton, [1, 1, 1, 1], "Bottleneck", 8)
    else:  # Basic blocks: identity and conv module residuals, attention layers
        model = ResGCN(skeleton, [1, 2, 2, 2], "Basic", 1, num_input=2, num_channel=3, attention="part")
    with torch.no_grad():  # non-trivial BN affine and statistics (zero_init_lastBN would hide the bottleneck path)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.normal_(0.0, 0.1)
    return model.to(dtype)


def _input(model: ResGCN, n: int = 3, t: int = 12) -> torch.Tensor:
    torch.manual_seed(1)
    num_channel = model.input_branches[0].bn.num_features
    return torch.randn(n, t, model.A.shape[-1], len(model.input_branches), num_channel, dtype=model.A.dtype)


@pytest.mark.parametrize("kind", ["n21", "basic_attention"])
def test_train_step_matches_reference(coco17, kind):
    model = _model(coco17, kind, torch.float64).train()
    ref = copy.deepcopy(model)
    x = _input(model)
    emb, feat, _ = model(x)
    ref_emb, ref_feat = _ref_forward(ref, x)
    torch.testing.assert_close(emb, ref_emb, **TOL64)
    torch.testing.assert_close(feat, ref_feat, **TOL64)
    weights = torch.randn_like(emb)
    (emb * weights).sum().add(feat.square().mean()).backward()
    (ref_emb * weights).sum().add(ref_feat.square().mean()).backward()
    ref_params = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, **TOL64, msg=name)
    ref_state = ref.state_dict()
    for name, buf in model.state_dict().items():  # running statistics updated once, equally
        torch.testing.assert_close(buf, ref_state[name], **TOL64, msg=name)


@pytest.mark.parametrize("kind", ["n21", "basic_attention"])
def test_eval_and_fused_match_reference(coco17, kind):
    model = _model(coco17, kind).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = model.fused_for_inference()
    x = _input(model)
    with torch.no_grad():
        ref_emb, ref_feat = _ref_forward(model, x)
        emb, feat, _ = model(x)
    with torch.inference_mode():
        fused_emb, fused_feat, _ = fused(x)
    for got in ((emb, feat), (fused_emb, fused_feat)):
        torch.testing.assert_close(got[0], ref_emb, **TOL)
        torch.testing.assert_close(got[1], ref_feat, **TOL)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the original is untouched
    left = [n for n, m in fused.named_modules() if isinstance(m, torch.nn.BatchNorm2d) and ".att." not in n]
    assert left == [] and not fused.training


def test_recompute_keeps_gradients(coco17):
    model = _model(coco17, "n21").train()
    recomputed = copy.deepcopy(model)
    assert recompute_activations(recomputed) == 8
    x = _input(model)
    model(x)[0].square().sum().backward()
    recomputed(x)[0].square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), recomputed.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


def _nchw_only(out) -> bool:
    return isinstance(out, torch.Tensor) and out.dim() == 4 and not out.is_contiguous(memory_format=torch.channels_last)


def test_activations_stay_channels_last(coco17):
    """A layer that silently falls back to NCHW costs a copy per call and the slow conv kernels. Only the input
    BatchNorms run on NCHW, by design (few channels: channels_last BatchNorm is slower there)."""
    model = _model(coco17, "n21").train()
    wrong = []
    for name, m in model.named_modules():
        m.register_forward_hook(lambda mod, args, out, name=name: wrong.append(name) if _nchw_only(out) else None)
    model(_input(model))
    assert wrong == [f"input_branches.{i}.bn" for i in range(len(model.input_branches))]
