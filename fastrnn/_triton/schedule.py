"""Host-side bookkeeping shared by the launchers: step rows and offsets, kernel choice, tile sizes.

Nothing here reads tensor data on the host: batch_sizes and offsets travel to the device and the
kernels read them there, so the launchers trace under torch.compile (fake tensors) unchanged.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
import triton
import triton.language as tl

KINDS = ("auto", "step", "sequence")
_override: list[str] = []

#: The sequence kernel holds every gate's W_hh tile (and w_hr) in one program's registers for the
#: whole sequence. Compiled for sm_80/sm_90 (``python -m fastrnn._triton.aot``), 4 warps hold up to
#: 16 KiB of weights in tiles up to 32 wide without spilling; wider tiles spill (LSTM, 16-bit, H=64).
SEQUENCE_MAX_BYTES = 16 * 1024
SEQUENCE_MAX_TILE = 32
#: Beyond this even a forced sequence kernel would not compile for a GPU (register file overflow).
SEQUENCE_HARD_MAX_ELEMENTS = 64 * 1024


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _pow2(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def sequence_weight_elements(gates: int, hidden: int, proj: int) -> int:
    """Weight elements a sequence-kernel program holds: W_hh as padded tiles, plus w_hr."""
    h, p = _pow2(hidden), _pow2(proj)
    return gates * h * p + (h * p if proj != hidden else 0)


def choose_kernel(gates: int, hidden: int, proj: int, dtype: torch.dtype) -> str:
    """``"sequence"`` when one program can keep the recurrent weights in registers for the whole
    sequence, else ``"step"``.

    The sequence kernel saves T-1 launches (2T-1 in backward) and never writes h to memory to
    read it back, but it runs only one program per 16 batch rows and each holds every gate's
    W_hh tile (G x H x P, padded to powers of two >= 16) plus w_hr. Past ``SEQUENCE_MAX_BYTES``
    (or ``SEQUENCE_MAX_TILE`` wide) those registers spill and the step kernel, which spreads W_hh
    over many programs, wins. So every cell picks it up to H = 32 (P = 32), except float64 LSTM and
    GRU (up to 16); the aot compile test checks that these largest picks do not spill.
    """
    size = torch.empty(0, dtype=dtype).element_size()
    fits = (sequence_weight_elements(gates, hidden, proj) * size <= SEQUENCE_MAX_BYTES
            and max(_pow2(hidden), _pow2(proj)) <= SEQUENCE_MAX_TILE)
    return "sequence" if fits else "step"


def requested_kind() -> str:
    """The innermost ``use_kernel`` block, else ``FASTRNN_TRITON_KERNEL``, else ``"auto"``."""
    kind = _override[-1] if _override else os.environ.get("FASTRNN_TRITON_KERNEL", "auto")
    if kind not in KINDS:
        raise ValueError(f"fastrnn: FASTRNN_TRITON_KERNEL={kind!r}; expected one of {', '.join(KINDS)}")
    return kind


@contextlib.contextmanager
def use_kernel(kind: str) -> Iterator[None]:
    """``with use_kernel("step"):`` forces the Triton kernel kind inside the block (tests, benchmarks)."""
    if kind not in KINDS:
        raise ValueError(f"fastrnn: use_kernel({kind!r}); expected one of {', '.join(KINDS)}")
    _override.append(kind)
    try:
        yield
    finally:
        _override.pop()


def kernel_kind(gates: int, hidden: int, proj: int, dtype: torch.dtype) -> str:
    kind = requested_kind()
    if kind == "auto":
        return choose_kernel(gates, hidden, proj, dtype)
    if kind == "sequence" and sequence_weight_elements(gates, hidden, proj) > SEQUENCE_HARD_MAX_ELEMENTS:
        raise ValueError(f"fastrnn: the Triton sequence kernel was forced, but hidden size {hidden} "
                         f"(proj {proj}) is too large for one program; use the step kernel")
    return kind


def acc_dtype(dtype: torch.dtype) -> tuple[torch.dtype, tl.dtype]:
    """Accumulation type (torch, triton): float64 for float64, else float32."""
    return (torch.float64, tl.float64) if dtype == torch.float64 else (torch.float32, tl.float32)


def tiles(hidden: int, proj: int) -> dict[str, int]:
    """Step-kernel tiles: tl.dot needs every dimension >= 16 (padded and masked); 32 x 32 keeps
    the LSTM step kernel (four accumulators) under 255 registers without spills on sm_80/sm_90."""
    return {"BB": 16, "BH": min(32, _pow2(hidden)), "BK": min(32, _pow2(proj))}


def seq_tiles(hidden: int, proj: int) -> dict[str, int]:
    return {"BB": 16, "BH": _pow2(hidden), "BP": _pow2(proj)}


class Schedule:
    """Rows per step of a (packed or padded) sequence, on the host (shapes only) and the device."""

    def __init__(self, xw: torch.Tensor, batch_sizes: torch.Tensor | None, batch: int):
        self.packed = batch_sizes is not None
        if self.packed:
            self.T = batch_sizes.shape[0]
            bs = batch_sizes.to(torch.int64)
        else:
            self.T = xw.shape[0]
            bs = torch.full((self.T,), batch, dtype=torch.int64)
        self.B = batch
        self.lead = xw.shape[:-1]
        self.N = xw.shape[0] if self.packed else self.T * batch
        self.bs_host = bs
        self.off_host = torch.cumsum(bs, 0) - bs
        self.bs = bs.to(xw.device)
        self.off = self.off_host.to(xw.device)

    def flat(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(self.N, t.shape[-1]).contiguous()

    def unflat(self, t: torch.Tensor) -> torch.Tensor:
        return t.view(*self.lead, t.shape[-1])

    def order(self, reverse: bool, backward: bool = False) -> list[tuple[int, int, int]]:
        """(t, the step processed before t in the forward pass, whether there is one), in the
        forward (or backward) processing order."""
        steps = []
        for t in range(self.T):
            tp = t + 1 if reverse else t - 1
            has = 0 <= tp < self.T
            steps.append((t, tp if has else t, int(has)))
        forward_order = steps[::-1] if reverse else steps
        return forward_order[::-1] if backward else forward_order

    def prev_index(self, reverse: bool, device: torch.device) -> torch.Tensor:
        """For each flattened row, its row of h_{t-1} in cat([output, h0]) (for dW_hh = dgates^T @ h_prev)."""
        T, N = self.T, self.N
        t_of = torch.repeat_interleave(torch.arange(T), self.bs_host, output_size=N)
        r_of = torch.arange(N) - self.off_host[t_of]
        tp = t_of + 1 if reverse else t_of - 1
        tpc = tp.clamp(0, max(T - 1, 0))
        from_out = (tp >= 0) & (tp < T) & (r_of < self.bs_host[tpc])
        return torch.where(from_out, self.off_host[tpc] + r_of, N + r_of).to(device)

