"""The cuda backend on a real GPU: fastrnn modules against torch.nn on cuDNN (outputs, final states and
every gradient; all cells, packed input, bidirectional, stacked, projected LSTM), float16/bfloat16
by the tolerance rule, and float64 gradcheck of the fused ops. Skipped without a GPU or without
the CUDA build of fastrnn._C.
"""
from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from _models import CELLS, flatten, twins
from fastrnn import _ext
from fastrnn.autograd import LayerFunction
from fastrnn.backends import Backend, ops_for
from tolerance import assert_close_rule

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not _ext.has_cuda(), reason="fastrnn._C was built without CUDA"),
]

LENGTHS = [5, 4, 2]


@pytest.fixture(autouse=True)
def exact_float32():
    """cuDNN and cuBLAS may use TF32 for float32; compare against full float32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def run(module, x, hx, packed: bool, cot=None):
    """Outputs (PackedSequence data) and final states; with cotangents, also the gradients of the
    input, the initial states and the parameters."""
    leaves = [x] + hx
    inp = pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=True) if packed else x
    outs = flatten(module(inp, tuple(hx) if len(hx) == 2 else hx[0]))
    if cot is None:
        return outs, None
    return outs, torch.autograd.grad(outs, leaves + list(module.parameters()), cot)


def inputs(ref, dtype, T=5, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    dirs = 2 if ref.bidirectional else 1
    x = torch.randn(T, B, ref.input_size, generator=g, dtype=torch.float64)
    sizes = [ref.proj_size or ref.hidden_size] + ([ref.hidden_size] if ref.mode == "LSTM" else [])
    hx = [torch.randn(ref.num_layers * dirs, B, s, generator=g, dtype=torch.float64) * 0.5 for s in sizes]
    return [t.to("cuda", dtype).requires_grad_() for t in [x] + hx]


def cotangents(outs, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(o.shape, generator=g, dtype=torch.float64).to(o) for o in outs]


LAYOUTS = [dict(num_layers=1, bidirectional=False, packed=False), dict(num_layers=1, bidirectional=False, packed=True),
           dict(num_layers=2, bidirectional=True, packed=False), dict(num_layers=2, bidirectional=True, packed=True)]


def _layout_id(layout):
    return f"L{layout['num_layers']}-{'bidir' if layout['bidirectional'] else 'uni'}" + (
        "-packed" if layout["packed"] else "")


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
@pytest.mark.parametrize("cell", list(CELLS))
def test_matches_cudnn_float32(cell, layout):
    layout = dict(layout)
    packed = layout.pop("packed")
    ref, fast = twins(cell, input_size=6, hidden=33, backend="cuda", **layout)
    ref, fast = ref.cuda(), fast.cuda()
    leaves = inputs(ref, torch.float32)
    ref_out, _ = run(ref, leaves[0], leaves[1:], packed)
    cot = cotangents(ref_out)
    ref_out, ref_grads = run(ref, leaves[0], leaves[1:], packed, cot)
    out, grads = run(fast, leaves[0], leaves[1:], packed, cot)
    for name, a, b in zip(["output", "h_n", "c_n"], out, ref_out):
        torch.testing.assert_close(a, b, msg=lambda m: f"{name}: {m}")
    names = ["input", "h0", "c0"][: len(leaves)] + [n for n, _ in ref.named_parameters()]
    for name, a, b in zip(names, grads, ref_grads):
        torch.testing.assert_close(a, b, msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_low_precision_by_the_tolerance_rule(cell, dtype):
    """Error against a float64 model at most 2x cuDNN's own error in the same dtype (+ floor)."""
    ref64, _ = twins(cell, input_size=6, hidden=33, num_layers=2, bidirectional=True)
    low_ref, fast = twins(cell, input_size=6, hidden=33, num_layers=2, bidirectional=True, backend="cuda")
    ref64 = ref64.to("cuda", torch.float64)
    low_ref, fast = low_ref.to("cuda", dtype), fast.to("cuda", dtype)
    leaves64 = inputs(ref64, torch.float64)
    out64, _ = run(ref64, leaves64[0], leaves64[1:], packed=True)
    cot = cotangents(out64)
    out64, grads64 = run(ref64, leaves64[0], leaves64[1:], True, cot)
    low = [t.detach().to(dtype).requires_grad_() for t in leaves64]
    cot_low = [c.to(dtype) for c in cot]
    same, same_grads = run(low_ref, low[0], low[1:], True, cot_low)
    got, got_grads = run(fast, low[0], low[1:], True, cot_low)
    for i, (a, r, s) in enumerate(zip(got, out64, same)):
        assert_close_rule(a, r, s, name=f"output {i}")
    names = ["input", "h0", "c0"][: len(low)] + [n for n, _ in fast.named_parameters()]
    for name, a, r, s in zip(names, got_grads, grads64, same_grads):
        assert_close_rule(a, r, s, name=f"grad {name}")


def _op_args(cell: str, packed: bool, reverse: bool, T=4, B=3, H=5, P=None):
    g = torch.Generator().manual_seed(0)
    G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[cell]
    bs = torch.tensor([3, 3, 2, 1]) if packed else None
    lead = (int(bs.sum()),) if packed else (T, B)
    P = P or H

    def r(*shape, scale=1.0):
        return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).cuda().requires_grad_()

    args = {"xw": r(*lead, G * H), "w_hh": r(G * H, P, scale=H ** -0.5)}
    if cell == "lstm":
        args["w_hr"] = r(P, H, scale=H ** -0.5) if P != H else None
    if cell == "gru":
        args["b_hn"] = r(H, scale=0.5)
    args["h0"] = r(B, P, scale=0.5)
    if cell == "lstm":
        args["c0"] = r(B, H, scale=0.5)
    return args, bs


@pytest.mark.parametrize("packed,reverse", [(False, False), (True, True)], ids=["padded", "packed-reverse"])
@pytest.mark.parametrize("cell,P", [("rnn_tanh", None), ("rnn_relu", None), ("lstm", None), ("lstm", 3),
                                    ("gru", None)], ids=["rnn_tanh", "rnn_relu", "lstm", "lstm-proj3", "gru"])
def test_gradcheck_float64(cell, P, packed, reverse):
    """The forward and backward ops of the cuda backend, joined by fastrnn's autograd.Function
    (with the input projection), against finite differences."""
    args, bs = _op_args(cell, packed, reverse, P=P)
    g = torch.Generator().manual_seed(1)
    G, I = args["w_hh"].shape[0], 2
    lead = args["xw"].shape[:-1]

    def r(*shape):
        return torch.randn(shape, generator=g, dtype=torch.float64).cuda().requires_grad_()

    layer = {"x": r(*lead, I), "w_ih": r(G, I), "w_hh": args["w_hh"], "b_ih": r(G), "b_hh": r(G),
             "w_hr": args.get("w_hr"), "h0": args["h0"], "c0": args.get("c0")}
    names = [n for n, v in layer.items() if v is not None]

    def f(*tensors):
        a = {**layer, **dict(zip(names, tensors))}
        return LayerFunction.apply(cell, Backend.CUDA.value, *a.values(), bs, reverse)

    assert torch.autograd.gradcheck(f, [layer[n] for n in names])


def test_mixed_devices_are_refused():
    args, bs = _op_args("gru", False, False)
    args = {n: v.detach() for n, v in args.items()}
    args["h0"] = args["h0"].cpu()
    with pytest.raises(RuntimeError, match="h0"):
        ops_for(Backend.CUDA).gru_forward(*args.values(), bs, False)
