"""The fused ops of every backend against reference.py: forward outputs and saved activations,
backward against autograd through the reference, opcheck, float64 gradcheck and the argument checks.

Generic over backends through the ``fused`` fixture and ``backends.ops_for``; shapes are tiny.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools

import pytest
import torch

import fastrnn  # noqa: F401  (registers the fake implementations opcheck needs)
from fastrnn import backends, reference
from fastrnn.backends import Backend
from tolerance import assert_close_rule

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


@dataclasses.dataclass(frozen=True)
class Case:
    cell: str  # rnn_tanh | rnn_relu | lstm | gru
    T: int
    B: int
    H: int
    P: int | None = None  # LSTM projection size
    b_hn: bool = True  # GRU's n-gate bias given (else None)
    packed: bool = False
    reverse: bool = False

    @property
    def name(self) -> str:
        cell = self.cell + (f"-proj{self.P}" if self.P else "") + ("" if self.b_hn or self.cell != "gru" else "-nobias")
        flags = ("-packed" if self.packed else "") + ("-reverse" if self.reverse else "")
        return f"{cell}-T{self.T}-B{self.B}-H{self.H}{flags}"


def batch_sizes(T: int, B: int) -> torch.Tensor:
    """Non-increasing, from B down to 1 (or 2 for B=2): e.g. T4 B3 -> [3, 3, 2, 1]."""
    return torch.tensor([max(1, B - t * B // T) for t in range(T)], dtype=torch.int64)


def make_inputs(c: Case, dtype: torch.dtype, device: str, seed: int = 0) -> dict:
    """The forward's arguments in schema order (values drawn in float64, then cast)."""
    g = torch.Generator().manual_seed(seed)
    H, P, G = c.H, c.P or c.H, GATES[c.cell]
    bs = batch_sizes(c.T, c.B) if c.packed else None
    lead = (int(bs.sum()),) if c.packed else (c.T, c.B)
    k = H ** -0.5

    def rand(*shape, scale=1.0, uniform=False):
        x = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * k if uniform else \
            torch.randn(shape, generator=g, dtype=torch.float64) * scale
        return x.to(dtype=dtype, device=device)

    args = {"xw": rand(*lead, G * H), "w_hh": rand(G * H, P, uniform=True)}
    if c.cell == "lstm":
        args["w_hr"] = rand(P, H, uniform=True) if c.P else None
    if c.cell == "gru":
        args["b_hn"] = rand(H, uniform=True) if c.b_hn else None
    args["h0"] = rand(c.B, P, scale=0.5)
    if c.cell == "lstm":
        args["c0"] = rand(c.B, H, scale=0.5)
    args["batch_sizes"] = bs
    args["reverse"] = c.reverse
    return args


def diff_names(args: dict) -> list[str]:
    """The arguments with gradients: every tensor but batch_sizes."""
    return [n for n, v in args.items() if isinstance(v, torch.Tensor) and n != "batch_sizes"]


def n_diff_outputs(cell: str) -> int:
    return 3 if cell == "lstm" else 2  # output, h_n (, c_n); the rest are saved activations


def run_forward(ops, cell: str, args: dict):
    return getattr(ops, f"{cell}_forward")(*args.values())


def run_reference(cell: str, args: dict):
    return getattr(reference, f"{cell}_forward")(*args.values())


def run_backward(ops, cell: str, args: dict, outs, grads) -> dict:
    """The backward op on the forward's outputs; -> gradient per differentiable argument name."""
    a = args
    if cell == "lstm":
        gx, gw, gwr, gh, gc = ops.lstm_backward(*grads, a["w_hh"], a["w_hr"], a["h0"], a["c0"], outs[0], outs[3],
                                                outs[4], a["batch_sizes"], a["reverse"])
        return {"xw": gx, "w_hh": gw, "w_hr": gwr, "h0": gh, "c0": gc}
    if cell == "gru":
        gx, gw, gb, gh = ops.gru_backward(*grads, a["w_hh"], a["b_hn"], a["h0"], outs[0], outs[2],
                                          a["batch_sizes"], a["reverse"])
        return {"xw": gx, "w_hh": gw, "b_hn": gb, "h0": gh}
    gx, gw, gh = getattr(ops, f"{cell}_backward")(*grads, a["w_hh"], a["h0"], outs[0], a["batch_sizes"], a["reverse"])
    return {"xw": gx, "w_hh": gw, "h0": gh}


def cast(args: dict, dtype: torch.dtype, requires_grad: bool = False) -> dict:
    out = {}
    for n, v in args.items():
        if isinstance(v, torch.Tensor) and n != "batch_sizes":
            v = v.detach().to(device="cpu", dtype=dtype).requires_grad_(requires_grad)
        out[n] = v
    return out


def reference_grads(cell: str, args: dict, grads, dtype: torch.dtype) -> dict:
    """Autograd through reference.py in `dtype` on the CPU."""
    a = cast(args, dtype, requires_grad=True)
    outs = run_reference(cell, a)[: n_diff_outputs(cell)]
    names = diff_names(a)
    got = torch.autograd.grad(outs, [a[n] for n in names], [g.detach().cpu().to(dtype) for g in grads])
    return dict(zip(names, got))


def skip_unless_runs(backend: Backend, device: str, dtype: torch.dtype) -> None:
    reason = backends.why_not(backend, torch.empty(0, dtype=dtype, device=device))
    if reason is not None:
        pytest.skip(reason)


def _cases() -> list:
    """Every cell and layout in float32; fewer layouts in the other dtypes; a one-step one-row edge case."""
    cells = [dict(cell="rnn_tanh"), dict(cell="rnn_relu"), dict(cell="lstm"), dict(cell="lstm", P=17),
             dict(cell="gru"), dict(cell="gru", b_hn=False)]
    layouts = [(False, False), (True, False), (False, True), (True, True)]
    params = []
    for kw, (packed, reverse), dtype in itertools.product(
            cells, layouts, [torch.float32, torch.float64, torch.bfloat16, torch.float16]):
        if dtype != torch.float32 and packed != reverse:
            continue
        c = Case(T=7, B=3, H=33, packed=packed, reverse=reverse, **kw)
        params.append(pytest.param(c, dtype, id=f"{c.name}-{str(dtype)[6:]}"))
    for kw in cells:
        c = Case(T=1, B=1, H=5, packed=True, **kw)
        params.append(pytest.param(c, torch.float32, id=f"{c.name}-float32"))
    # Products large enough for the CPU backend's oneDNN GEMMs (>= 8 MFLOP, on CPUs that use them), and
    # steps large enough that its time loops split across threads (common.h's for_units and, with the
    # panel GEMM, a team of threads sharing the hidden units; H=200 leaves a partial block of units and
    # packed B=23 gives steps of 23, 19, 14, 10 and 5 rows, split into row tiles of 4 to 6; B=1, the panel
    # GEMM's one-row tiles on every CPU, also on a team). bfloat16 on a team: its h_t kept in float for the
    # next step's GEMM, h_n gathered from each row's last step; with a projection, the running state read
    # by the panel GEMM, on a team split by rows (B=23) and by units (B=6), shrinking and growing steps.
    for c in [Case(cell="lstm", T=3, B=32, H=192, reverse=True), Case(cell="lstm", T=3, B=32, H=192, P=176, packed=True),
              Case(cell="gru", T=3, B=32, H=192, packed=True, reverse=True),
              Case(cell="rnn_tanh", T=3, B=16, H=512, reverse=True),
              Case(cell="lstm", T=5, B=23, H=200, packed=True, reverse=True),
              Case(cell="lstm", T=5, B=23, H=200, P=40, reverse=True),
              Case(cell="rnn_relu", T=5, B=23, H=200, packed=True),
              Case(cell="lstm", T=4, B=1, H=200, P=40), Case(cell="gru", T=4, B=1, H=200, reverse=True)]:
        params.append(pytest.param(c, torch.float32, id=f"{c.name}-float32"))
    for c in [Case(cell="lstm", T=5, B=23, H=200, packed=True, reverse=True),
              Case(cell="rnn_relu", T=5, B=23, H=200, packed=True),
              Case(cell="lstm", T=5, B=23, H=200, P=40, packed=True, reverse=True),
              Case(cell="lstm", T=5, B=6, H=200, P=40, packed=True)]:
        params.append(pytest.param(c, torch.bfloat16, id=f"{c.name}-bfloat16"))
    return params


CASES = _cases()


@pytest.mark.parametrize("case,dtype", CASES)
def test_forward(fused, case: Case, dtype):
    backend, device = fused
    skip_unless_runs(backend, device, dtype)
    args = make_inputs(case, dtype, device)
    got = run_forward(backends.ops_for(backend), case.cell, args)
    ref64 = run_reference(case.cell, cast(args, torch.float64))
    same = run_reference(case.cell, cast(args, dtype)) if dtype in (torch.float16, torch.bfloat16) else ref64
    names = {"lstm": ["output", "h_n", "c_n", "gates", "cells"], "gru": ["output", "h_n", "workspace"]}
    assert len(got) == len(ref64)
    for name, a, r, s in zip(names.get(case.cell, ["output", "h_n"]), got, ref64, same):
        assert a.dtype == dtype and a.device.type == device, name
        assert_close_rule(a.cpu(), r, s, name=name)


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # the Triton interpreter's numpy exp
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_forward_saturated(fused, cell):
    """Pre-activations out to +-150, where sigmoid and tanh saturate and exp overflows float32:
    finite and as the float64 reference (the CPU kernels' exp clamps its argument)."""
    backend, device = fused
    skip_unless_runs(backend, device, torch.float32)
    case = Case(cell=cell, T=3, B=2, H=40)
    args = make_inputs(case, torch.float32, device)
    args["xw"] = args["xw"] * 50
    got = run_forward(backends.ops_for(backend), cell, args)
    ref64 = run_reference(cell, cast(args, torch.float64))
    for i, (a, r) in enumerate(zip(got, ref64)):
        assert torch.isfinite(a).all(), f"output {i}"
        assert_close_rule(a.cpu(), r, r, name=f"output {i}")


@pytest.mark.parametrize("case,dtype", CASES)
def test_backward(fused, case: Case, dtype):
    backend, device = fused
    skip_unless_runs(backend, device, dtype)
    ops = backends.ops_for(backend)
    args = make_inputs(case, dtype, device)
    # The backward alone (test_forward checks the forward): it gets the float64 reference's saved
    # activations in `dtype`. A low-precision forward's own ReLU outputs could differ in sign from
    # float64 where a pre-activation is within rounding of 0, and the gradient with them.
    outs = [o.to(dtype=dtype, device=device) for o in run_reference(case.cell, cast(args, torch.float64))]
    g = torch.Generator().manual_seed(1)
    grads = [torch.randn(o.shape, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
             for o in outs[: n_diff_outputs(case.cell)]]
    got = run_backward(ops, case.cell, args, outs, grads)
    ref64 = reference_grads(case.cell, args, grads, torch.float64)
    same = reference_grads(case.cell, args, grads, dtype) if dtype in (torch.float16, torch.bfloat16) else ref64
    for name, a in got.items():
        if name not in ref64:  # w_hr without projection: empty; b_hn without bias: zeros
            expected = torch.zeros(0 if name == "w_hr" else case.H, dtype=dtype)
            torch.testing.assert_close(a.cpu(), expected, msg=name)
            continue
        assert a.dtype == dtype and a.device.type == device, name
        assert_close_rule(a.cpu(), ref64[name], same[name], name=f"grad_{name}")


class FusedFunction(torch.autograd.Function):
    """Joins a backend's forward and backward op, for gradcheck."""

    @staticmethod
    def forward(ctx, ops, cell, args, *tensors):
        names = diff_names(args)
        full = {**args, **dict(zip(names, tensors))}
        outs = run_forward(ops, cell, full)
        ctx.ops, ctx.cell, ctx.args, ctx.names = ops, cell, full, names
        ctx.outs = outs
        ctx.mark_non_differentiable(*outs[n_diff_outputs(cell):])
        return outs

    @staticmethod
    def backward(ctx, *grads):
        n = n_diff_outputs(ctx.cell)
        grads = [torch.zeros_like(o) if g is None else g for g, o in zip(grads[:n], ctx.outs)]
        got = run_backward(ctx.ops, ctx.cell, ctx.args, ctx.outs, grads)
        return (None, None, None, *(got[name] for name in ctx.names))


GRADCHECK_CASES = [Case(cell=c, T=3, B=2, H=3, packed=p, reverse=r, **kw)
                   for c, kw in [("rnn_tanh", {}), ("rnn_relu", {}), ("lstm", {}), ("lstm", {"P": 2}), ("gru", {}),
                                 ("gru", {"b_hn": False})]
                   for p, r in [(False, False), (True, True)]]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=lambda c: c.name)
def test_gradcheck_float64(fused, case: Case):
    backend, device = fused
    skip_unless_runs(backend, device, torch.float64)
    args = make_inputs(case, torch.float64, device, seed=3)
    names = diff_names(args)
    ops = backends.ops_for(backend)

    def f(*tensors):
        return FusedFunction.apply(ops, case.cell, args, *tensors)[: n_diff_outputs(case.cell)]

    inputs = [args[n].clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


class _Captured(Exception):
    def __init__(self, op, args):
        super().__init__()
        self.op, self.call_args = op, list(args)


def captured_backward_call(ops, cell: str, args: dict, outs, grads):
    """(backward op, its argument list) exactly as run_backward calls it."""

    class Recorder:
        def __getattr__(self, name):
            def call(*a):
                raise _Captured(getattr(ops, name), a)
            return call

    try:
        run_backward(Recorder(), cell, args, outs, grads)
    except _Captured as c:
        return c.op, c.call_args
    raise AssertionError("run_backward made no call")


OPCHECK_CASES = [Case(cell=c, T=3, B=2, H=4, packed=p, reverse=p, **kw)
                 for c, kw in [("rnn_tanh", {}), ("rnn_relu", {}), ("lstm", {}), ("lstm", {"P": 3}), ("gru", {}),
                               ("gru", {"b_hn": False})]
                 for p in (False, True)]


@pytest.mark.parametrize("case", OPCHECK_CASES, ids=lambda c: c.name)
def test_opcheck(fused, case: Case):
    backend, device = fused
    ops = backends.ops_for(backend)
    fwd = getattr(ops, f"{case.cell}_forward")
    if not isinstance(fwd, torch._ops.OpOverloadPacket):
        pytest.skip(f"backend {backend.value} has no registered torch.library ops")
    args = make_inputs(case, torch.float32, device)
    outs = fwd(*args.values())
    grads = [torch.randn_like(o) for o in outs[: n_diff_outputs(case.cell)]]
    torch.library.opcheck(fwd, tuple(args.values()))
    op, bwd_args = captured_backward_call(ops, case.cell, args, outs, grads)
    torch.library.opcheck(op, tuple(bwd_args))


@pytest.mark.parametrize("case", [Case(cell="lstm", T=4, B=3, H=20, packed=True), Case(cell="lstm", T=3, B=2, H=5, P=3),
                                  Case(cell="gru", T=4, B=3, H=20, packed=True, reverse=True)], ids=lambda c: c.name)
def test_forward_without_save(fused, case: Case):
    """save=False (inference) gives the same outputs and states, and empty saved activations."""
    backend, device = fused
    skip_unless_runs(backend, device, torch.float32)
    fwd = getattr(backends.ops_for(backend), f"{case.cell}_forward")
    args = make_inputs(case, torch.float32, device)
    full, lean = fwd(*args.values()), fwd(*args.values(), save=False)
    n = 3 if case.cell == "lstm" else 2
    for i, (a, b) in enumerate(zip(full[:n], lean[:n], strict=True)):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=lambda m: f"output {i}: {m}")
    assert all(t.shape == (0,) and t.dtype == torch.float32 for t in lean[n:])
    if isinstance(fwd, torch._ops.OpOverloadPacket):
        torch.library.opcheck(fwd, tuple(args.values()), {"save": False})


@pytest.mark.parametrize("case", [Case(cell="lstm", T=5, B=23, H=200, packed=True, reverse=True),
                                  Case(cell="lstm", T=5, B=23, H=200, P=40)], ids=lambda c: c.name)
def test_concurrent_cpu_calls(case: Case):
    """Calls from several Python threads at once give exactly what one call gives: the ops release the
    GIL, and at these sizes each call runs the CPU backend's own team of threads, which meets at a
    barrier every step (with the panel GEMM; MKL's threads otherwise)."""
    skip_unless_runs(Backend.CPU, "cpu", torch.float32)
    fwd = backends.ops_for(Backend.CPU).lstm_forward
    args = make_inputs(case, torch.float32, "cpu")
    alone = fwd(*args.values())
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda _: fwd(*args.values()), range(8)))
    for got in together:
        for a, b in zip(got, alone, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", [Case(cell="lstm", T=7, B=3, H=33, packed=True, reverse=True),
                                  Case(cell="lstm", T=7, B=3, H=33, P=17)], ids=lambda c: c.name)
def test_lstm_bias(fused, case: Case, dtype):
    """lstm_forward's `bias` gives what the reference gives on xw + bias."""
    backend, device = fused
    skip_unless_runs(backend, device, dtype)
    fwd = backends.ops_for(backend).lstm_forward
    args = make_inputs(case, dtype, device)
    bias = torch.randn(4 * case.H, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = fwd(*args.values(), True, bias.to(dtype=dtype, device=device))

    def reference_on(dt):
        a = cast(args, dt)
        return run_reference("lstm", {**a, "xw": a["xw"] + bias.to(dt)})

    ref64 = reference_on(torch.float64)
    same = reference_on(dtype) if dtype == torch.bfloat16 else ref64
    for name, a, r, s in zip(["output", "h_n", "c_n", "gates", "cells"], got, ref64, same, strict=True):
        assert_close_rule(a.cpu(), r, s, name=name)
    if isinstance(fwd, torch._ops.OpOverloadPacket) and dtype == torch.float32:
        torch.library.opcheck(fwd, (*args.values(), True, bias.to(dtype=dtype, device=device)))


# Argument checks: (name, cell, how to break the forward's args) -> the op must raise before running.
def _bad(args: dict, **changes) -> dict:
    return {**args, **changes}


BAD_FORWARD = {  # name: (cell spec, how to break the args, pattern the message must match)
    "xw-2d-unpacked": ("lstm", lambda a: _bad(a, xw=a["xw"][0]), "xw"),
    "xw-columns": ("lstm", lambda a: _bad(a, xw=a["xw"][..., :-1]), "xw"),
    "xw-no-steps": ("rnn_tanh", lambda a: _bad(a, xw=a["xw"][:0]), "xw"),
    "xw-int": ("rnn_relu", lambda a: {k: (v.int() if isinstance(v, torch.Tensor) else v) for k, v in a.items()}, "dtype"),
    "w_hh-rows": ("gru", lambda a: _bad(a, w_hh=a["w_hh"][:-1]), "w_hh"),
    "w_hh-cols": ("rnn_tanh", lambda a: _bad(a, w_hh=torch.cat([a["w_hh"], a["w_hh"][:, :1]], 1)), "w_hh"),
    "w_hh-1d": ("lstm", lambda a: _bad(a, w_hh=a["w_hh"][0]), "w_hh"),
    "w_hh-dtype": ("lstm", lambda a: _bad(a, w_hh=a["w_hh"].double()), "w_hh.*dtype"),
    "w_hr-shape": ("lstm-proj", lambda a: _bad(a, w_hr=a["w_hr"][:, :-1]), "w_hr"),
    "b_hn-shape": ("gru", lambda a: _bad(a, b_hn=a["b_hn"][:-1]), "b_hn"),
    "h0-batch": ("gru", lambda a: _bad(a, h0=a["h0"][:-1]), "h0"),
    "h0-dtype": ("rnn_tanh", lambda a: _bad(a, h0=a["h0"].double()), "h0.*dtype"),
    "h0-device": ("lstm", lambda a: _bad(a, h0=a["h0"].to("meta")), "h0.*device"),
    "c0-shape": ("lstm", lambda a: _bad(a, c0=a["c0"][:, :-1]), "c0"),
    "bias-shape": ("lstm", lambda a: _bad(a, save=True, bias=a["xw"].new_zeros(a["xw"].shape[-1] - 1)), "bias"),
    "bias-dtype": ("lstm", lambda a: _bad(a, save=True, bias=a["xw"].new_zeros(a["xw"].shape[-1]).double()),
                   "bias.*dtype"),
    "c0-proj-shape": ("lstm-proj", lambda a: _bad(a, c0=a["h0"]), "c0"),
    "batch_sizes-increasing": ("lstm-packed", lambda a: _bad(a, batch_sizes=a["batch_sizes"].flip(0)), "batch_sizes"),
    "batch_sizes-sum": ("gru-packed", lambda a: _bad(a, xw=a["xw"][:-1]), "batch_sizes"),
    "batch_sizes-float": ("rnn_tanh-packed", lambda a: _bad(a, batch_sizes=a["batch_sizes"].float()), "batch_sizes"),
    "batch_sizes-2d": ("rnn_tanh-packed", lambda a: _bad(a, batch_sizes=a["batch_sizes"][None]), "batch_sizes"),
    "batch_sizes-zero": ("lstm-packed", lambda a: _bad(a, batch_sizes=torch.cat(
        [a["batch_sizes"][:-1], a["batch_sizes"][-1:] - 1]), xw=a["xw"][:-1]), "batch_sizes"),
    "batch_sizes-h0": ("gru-packed", lambda a: _bad(a, h0=torch.cat([a["h0"], a["h0"][:1]])), "h0"),
    "batch_sizes-meta": ("gru-packed", lambda a: _bad(a, batch_sizes=a["batch_sizes"].to("meta")), "batch_sizes.*CPU"),
}


def _base_case(spec: str) -> Case:
    cell, *flags = spec.split("-")
    return Case(cell=cell, T=4, B=3, H=5, P=2 if "proj" in flags else None, packed="packed" in flags)


def call_kernel(op, args, device: str):
    """Calls the backend's own kernel: with a meta argument the dispatcher would otherwise pick the
    fake implementation, which checks nothing."""
    if isinstance(op, torch._ops.OpOverloadPacket):
        key = torch._C.DispatchKey.CUDA if device == "cuda" else torch._C.DispatchKey.CPU
        return op.default.redispatch(torch._C.DispatchKeySet(key), *args)
    return op(*args)


@pytest.mark.parametrize("name", BAD_FORWARD)
def test_bad_forward_arguments(fused, name):
    backend, device = fused
    spec, breaks, pattern = BAD_FORWARD[name]
    case = _base_case(spec)
    args = breaks(make_inputs(case, torch.float32, device))
    with pytest.raises((RuntimeError, ValueError), match=pattern):
        call_kernel(getattr(backends.ops_for(backend), f"{case.cell}_forward"), list(args.values()), device)


BAD_BACKWARD = {
    # name: (cell spec, index of the argument of run_backward's call to replace, how)
    "grad_output-shape": ("lstm", 0, lambda t: t[..., :-1]),
    "grad_h_n-shape": ("rnn_tanh", 1, lambda t: t[:-1]),
    "grad_c_n-dtype": ("lstm", 2, lambda t: t.double()),
    "w_hh-shape": ("lstm-proj", 3, lambda t: t[:, :-1]),
    "gates-shape": ("lstm", 8, lambda t: t[..., :-1]),
    "cells-shape": ("lstm-proj", 9, lambda t: t[:-1]),
    "workspace-shape": ("gru", 6, lambda t: t[..., :-1]),
    "output-rows": ("gru-packed", 5, lambda t: t[:-1]),
    "h0-device": ("rnn_tanh", 3, lambda t: t.to("meta")),
    "batch_sizes-increasing": ("rnn_relu-packed", 5, lambda t: t.flip(0)),
}


@pytest.mark.parametrize("name", BAD_BACKWARD)
def test_bad_backward_arguments(fused, name):
    backend, device = fused
    spec, index, breaks = BAD_BACKWARD[name]
    case = _base_case(spec)
    ops = backends.ops_for(backend)
    args = make_inputs(case, torch.float32, device)
    outs = run_forward(ops, case.cell, args)
    grads = [torch.ones_like(o) for o in outs[: n_diff_outputs(case.cell)]]
    op, bad = captured_backward_call(ops, case.cell, args, outs, grads)
    bad[index] = breaks(bad[index])
    with pytest.raises((RuntimeError, ValueError), match=name.split("-")[0]):
        call_kernel(op, bad, device)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_unsupported_dtype(fused, dtype):
    backend, device = fused
    if backends.why_not(backend, torch.empty(0, dtype=dtype, device=device)) is None:
        pytest.skip(f"{backend.value} supports {dtype}")
    args = make_inputs(Case(cell="lstm", T=2, B=2, H=3), dtype, device)
    with pytest.raises((RuntimeError, ValueError), match="dtype"):
        call_kernel(backends.ops_for(backend).lstm_forward, list(args.values()), device)


def strided(t: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous tensor (every other element of a twice-as-wide one)."""
    wide = torch.stack([t, torch.full_like(t, float("nan"))], -1).flatten(-2)
    return wide[..., ::2]


@pytest.mark.parametrize("case", [Case(cell="lstm", T=4, B=3, H=5, P=2, packed=True, reverse=True),
                                  Case(cell="gru", T=4, B=3, H=5), Case(cell="rnn_tanh", T=4, B=3, H=5)],
                         ids=lambda c: c.name)
def test_noncontiguous_inputs(fused, case: Case):
    backend, device = fused
    ops = backends.ops_for(backend)
    args = make_inputs(case, torch.float32, device)
    outs = run_forward(ops, case.cell, args)
    grads = [torch.randn_like(o) for o in outs[: n_diff_outputs(case.cell)]]
    expected = run_backward(ops, case.cell, args, outs, grads)
    views = {n: strided(v) if n in diff_names(args) else v for n, v in args.items()}
    assert not views["xw"].is_contiguous()
    for a, e in zip(run_forward(ops, case.cell, views), outs):
        torch.testing.assert_close(a, e, rtol=0, atol=0)
    got = run_backward(ops, case.cell, views, [strided(o) for o in outs], [strided(g) for g in grads])
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
