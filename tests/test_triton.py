"""The Triton backend against reference.py: both kernel kinds, every cell, forward and backward.

Without a GPU the kernels run on CPU tensors under TRITON_INTERPRET=1 (set by conftest.py), so
shapes stay tiny. Backward ops get the saved activations of the Triton forward, as autograd.py
passes them, and are compared with autograd through the reference loop.
"""
from __future__ import annotations

import pytest
import torch

from fastrnn import reference
from tolerance import assert_close_rule

pytest.importorskip("triton")
from fastrnn._triton import ops, schedule, use_kernel  # noqa: E402

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not schedule.interpreted():
    pytest.skip("Triton needs a GPU or TRITON_INTERPRET=1", allow_module_level=True)

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "lstm_proj": 4, "gru": 3}
BATCH_SIZES = [3, 3, 2, 1]  # packed: T = 4, B = 3


def _inputs(cell: str, T: int, B: int, H: int, packed: bool, dtype: torch.dtype, seed: int = 0) -> dict:
    """float64 inputs of one op call (xw, weights, states), scaled to keep the gates unsaturated."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale)

    P = 2 if cell == "lstm_proj" else H
    G = GATES[cell]
    bs = torch.tensor(BATCH_SIZES[:T]) if packed else None
    B = int(bs[0]) if packed else B
    xw = rnd(int(bs.sum()), G * H) if packed else rnd(T, B, G * H)
    args = {"xw": xw, "w_hh": rnd(G * H, P, scale=0.5), "h0": rnd(B, P)}
    if cell.startswith("lstm"):
        args["w_hr"] = rnd(P, H, scale=0.5) if cell == "lstm_proj" else None
        args["c0"] = rnd(B, H)
    if cell == "gru":
        args["b_hn"] = rnd(H)
    args["batch_sizes"] = bs
    return args


def _forward(mod, cell: str, a: dict, reverse: bool):
    if cell.startswith("rnn"):
        return getattr(mod, f"{cell}_forward")(a["xw"], a["w_hh"], a["h0"], a["batch_sizes"], reverse)
    if cell.startswith("lstm"):
        return mod.lstm_forward(a["xw"], a["w_hh"], a["w_hr"], a["h0"], a["c0"], a["batch_sizes"], reverse)
    return mod.gru_forward(a["xw"], a["w_hh"], a["b_hn"], a["h0"], a["batch_sizes"], reverse)


def _cast(a: dict, dtype: torch.dtype) -> dict:
    return {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in a.items()}


def _to(a: dict, device: str) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) and k != "batch_sizes" else v) for k, v in a.items()}


def _differentiable(cell: str) -> list[str]:
    names = ["xw", "w_hh"]
    if cell == "lstm_proj":
        names.append("w_hr")
    if cell == "gru":
        names.append("b_hn")
    names.append("h0")
    if cell.startswith("lstm"):
        names.append("c0")
    return names


def _reference_grads(cell: str, a: dict, grads: list[torch.Tensor], reverse: bool) -> list[torch.Tensor]:
    """Autograd through reference.py: gradients of the differentiable inputs, in the schema's order."""
    a = dict(a)
    names = _differentiable(cell)
    for n in names:
        a[n] = a[n].detach().requires_grad_()
    outs = _forward(reference, cell, a, reverse)
    n_out = 3 if cell.startswith("lstm") else 2
    return list(torch.autograd.grad(outs[:n_out], [a[n] for n in names], grads))


def _triton_grads(cell: str, a: dict, fwd: tuple, grads: list[torch.Tensor], reverse: bool) -> list[torch.Tensor]:
    bs = a["batch_sizes"]
    if cell.startswith("rnn"):
        return list(getattr(ops, f"{cell}_backward")(grads[0], grads[1], a["w_hh"], a["h0"], fwd[0], bs, reverse))
    if cell.startswith("lstm"):
        out = ops.lstm_backward(grads[0], grads[1], grads[2], a["w_hh"], a["w_hr"], a["h0"], a["c0"],
                                fwd[0], fwd[3], fwd[4], bs, reverse)
        return [out[0], out[1]] + ([out[2]] if cell == "lstm_proj" else []) + [out[3], out[4]]
    return list(ops.gru_backward(grads[0], grads[1], a["w_hh"], a["b_hn"], a["h0"], fwd[0], fwd[2], bs, reverse))


def check_op(cell: str, kind: str, dtype: torch.dtype, packed: bool, reverse: bool, T=4, B=3, H=5, seed=0):
    """Forward (all outputs, saved activations included) and backward of one op against the reference."""
    a64 = _inputs(cell, T, B, H, packed, dtype, seed)
    a = _to(_cast(a64, dtype), DEVICE)
    with use_kernel(kind):
        fwd = _forward(ops, cell, a, reverse)
    ref64 = _forward(reference, cell, a64, reverse)
    low = _cast(a64, dtype) if dtype in (torch.float16, torch.bfloat16) else None
    ref_low = _forward(reference, cell, low, reverse) if low else [None] * len(ref64)
    for i, (x, r, rl) in enumerate(zip(fwd, ref64, ref_low)):
        assert x.dtype == dtype
        assert_close_rule(x.cpu(), r, rl, name=f"forward output {i}")

    g = torch.Generator().manual_seed(seed + 1)
    n_out = 3 if cell.startswith("lstm") else 2
    grads64 = [torch.randn(r.shape, generator=g, dtype=torch.float64) for r in ref64[:n_out]]
    with use_kernel(kind):
        got = _triton_grads(cell, a, fwd, [x.to(dtype).to(DEVICE) for x in grads64], reverse)
    want = _reference_grads(cell, a64, grads64, reverse)
    want_low = (_reference_grads(cell, low, [x.to(dtype) for x in grads64], reverse) if low
                else [None] * len(want))
    for name, x, r, rl in zip(_differentiable(cell), got, want, want_low):
        assert x.dtype == dtype
        assert_close_rule(x.cpu(), r, rl, name=f"grad {name}")


KINDS = ["step", "sequence"]
CELLS = list(GATES)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", CELLS)
def test_op_float64(cell, kind, packed, reverse):
    check_op(cell, kind, torch.float64, packed, reverse)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", CELLS)
def test_op_dtypes(cell, kind, dtype):
    check_op(cell, kind, dtype, packed=True, reverse=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "lstm_proj"])
def test_odd_sizes(cell, kind):
    """H = 33 spans several hidden tiles of the step kernel (and pads the sequence kernel's to 64)."""
    check_op(cell, kind, torch.float32, packed=False, reverse=True, T=2, B=3, H=33)


@pytest.mark.parametrize("kind", KINDS)
def test_gru_without_b_hn(kind):
    a = _to(_cast(_inputs("gru", 3, 3, 5, False, torch.float32), torch.float32), DEVICE)
    a_zero = dict(a, b_hn=torch.zeros_like(a["b_hn"]))
    with use_kernel(kind):
        out, h_n, ws = ops.gru_forward(a["xw"], a["w_hh"], None, a["h0"], None, False)
        ref = ops.gru_forward(a_zero["xw"], a_zero["w_hh"], a_zero["b_hn"], a_zero["h0"], None, False)
        torch.testing.assert_close(out, ref[0])
        grads = ops.gru_backward(torch.ones_like(out), torch.ones_like(h_n), a["w_hh"], None, a["h0"], out, ws,
                                 None, False)
    assert grads[2].shape == (5,)


def test_outputs_are_fresh():
    a = _to(_cast(_inputs("lstm", 2, 3, 5, False, torch.float32), torch.float32), DEVICE)
    outs = _forward(ops, "lstm", a, False)
    inputs = {t.data_ptr() for t in a.values() if isinstance(t, torch.Tensor)}
    assert not inputs & {t.data_ptr() for t in outs}


# ---- the heuristic and the override --------------------------------------------------------------

def test_choose_kernel_prefers_sequence_for_small_weights():
    assert schedule.choose_kernel(4, 16, 16, torch.float32) == "sequence"
    assert schedule.choose_kernel(4, 32, 32, torch.float32) == "sequence"  # 16 KiB: the limit
    assert schedule.choose_kernel(3, 32, 32, torch.bfloat16) == "sequence"
    assert schedule.choose_kernel(4, 16, 16, torch.float64) == "sequence"
    assert schedule.choose_kernel(4, 33 - 1, 16, torch.float16) == "sequence"  # projected LSTM


def test_choose_kernel_prefers_step_for_large_weights():
    assert schedule.choose_kernel(4, 33, 33, torch.float32) == "step"  # pads to 64
    assert schedule.choose_kernel(1, 64, 64, torch.float16) == "step"  # 8 KiB, but a 64-wide tile
    assert schedule.choose_kernel(4, 1024, 1024, torch.float16) == "step"


def test_choose_kernel_counts_dtype_and_projection():
    # the same shape: float64 weights take twice float32's bytes
    assert schedule.choose_kernel(4, 32, 32, torch.float32) == "sequence"
    assert schedule.choose_kernel(4, 32, 32, torch.float64) == "step"
    assert schedule.sequence_weight_elements(4, 32, 16) == 4 * 32 * 16 + 32 * 16
    assert schedule.sequence_weight_elements(4, 20, 20) == 4 * 32 * 32


def test_kernel_kind_override(monkeypatch):
    monkeypatch.delenv("FASTRNN_TRITON_KERNEL", raising=False)
    assert schedule.kernel_kind(4, 16, 16, torch.float32) == "sequence"
    monkeypatch.setenv("FASTRNN_TRITON_KERNEL", "step")
    assert schedule.kernel_kind(4, 16, 16, torch.float32) == "step"
    with use_kernel("sequence"):  # the block wins over the environment
        assert schedule.kernel_kind(4, 16, 16, torch.float32) == "sequence"
    monkeypatch.setenv("FASTRNN_TRITON_KERNEL", "fast")
    with pytest.raises(ValueError, match="FASTRNN_TRITON_KERNEL"):
        schedule.kernel_kind(4, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="use_kernel"):
        with use_kernel("fast"):
            pass


def test_forced_sequence_too_large_raises():
    with use_kernel("sequence"), pytest.raises(ValueError, match="too large"):
        schedule.kernel_kind(4, 512, 512, torch.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_kernel_kind_is_the_one_launched(kind, monkeypatch):
    """The forced kind decides which kernels run (so the tests above really cover both)."""
    launched = []
    real = ops.wrap_triton
    monkeypatch.setattr(ops, "wrap_triton", lambda k: (launched.append(k.__name__), real(k))[1])
    with use_kernel(kind):
        a = _to(_cast(_inputs("lstm", 2, 3, 5, False, torch.float32), torch.float32), DEVICE)
        fwd = _forward(ops, "lstm", a, False)
        _triton_grads("lstm", a, fwd, [torch.ones_like(t) for t in fwd[:3]], False)
    want = ({"lstm_seq_forward", "lstm_seq_backward"} if kind == "sequence"
            else {"lstm_step_forward", "lstm_step_backward", "rows_matmul"})
    assert set(launched) == want


@pytest.mark.skipif(not schedule.interpreted(), reason="a property of the interpreter")
def test_interpreter_rounds_bfloat16_like_a_gpu():
    """conftest.py makes the interpreter's float32 -> bfloat16 cast round to nearest even, as a GPU does."""
    import triton
    import triton.language as tl

    @triton.jit
    def cast(x_ptr, y_ptr, N: tl.constexpr):
        i = tl.arange(0, N)
        tl.store(y_ptr + i, tl.load(x_ptr + i).to(tl.bfloat16))

    x = torch.randn(256, generator=torch.Generator().manual_seed(0))
    y = torch.empty(256, dtype=torch.bfloat16)
    cast[(1,)](x, y, 256)
    assert torch.equal(y, x.bfloat16())
