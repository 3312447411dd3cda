"""What one benchmark case is, its floating-point work, the sweeps, and the callables that get timed."""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
MODES = ("fwd", "fwdbwd")
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# (T, B, I, H) of issue 6: the shapes the CPU speed targets are stated for.
STANDARD_SHAPES = ((100, 16, 128, 128), (100, 64, 256, 256), (50, 1, 64, 64), (200, 32, 512, 512))
# bfloat16 is reported beside float32 for these cells on every standard shape but the largest (keeps `make bench` short).
BF16_CELLS = ("rnn_tanh", "lstm", "gru")
QUICK_SHAPE = (6, 2, 16, 16)

_MODULES = {"rnn_tanh": ("RNN", {"nonlinearity": "tanh"}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
            "lstm": ("LSTM", {}), "gru": ("GRU", {})}


@dataclasses.dataclass(frozen=True)
class Case:
    cell: str
    T: int
    B: int
    I: int  # noqa: E741  (PyTorch's H_in, named like T, B, H)
    H: int
    proj: int = 0
    layers: int = 1
    bidirectional: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        for name in ("T", "B", "I", "H", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.proj and self.cell != "lstm":
            raise ValueError(f"proj (proj_size) applies to lstm only, got cell {self.cell!r}")
        if not 0 <= self.proj < self.H:
            raise ValueError(f"proj must be in [0, H) like torch.nn.LSTM's proj_size, got {self.proj} with H={self.H}")

    @property
    def variant(self) -> str:
        """The cell as the report names it: lstm with a projection is its own row family."""
        return "lstm_proj" if self.proj else self.cell

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.T, self.B, self.I, self.H)

    @property
    def label(self) -> str:
        extra = (f" P{self.proj}" if self.proj else "") + (f" L{self.layers}" if self.layers > 1 else "")
        extra += " bidir" if self.bidirectional else ""
        return f"{self.variant} {self.T},{self.B},{self.I},{self.H}{extra} {self.dtype}"


def forward_flops(case: Case) -> int:
    """Multiply-adds (x2) of every matrix product of the forward pass: input projection, recurrence, projection.

    Per layer and direction: 2*T*B*G*H*(I_l + P) for x @ W_ih^T and h @ W_hh^T (P = proj or H), plus
    2*T*B*P*H for h = o*tanh(c) @ W_hr^T with a projection. Layers after the first take D*P inputs.
    """
    G, P, D = GATES[case.cell], case.proj or case.H, 2 if case.bidirectional else 1
    total = 0
    for layer in range(case.layers):
        inputs = case.I if layer == 0 else D * P
        per_direction = 2 * case.T * case.B * G * case.H * (inputs + P)
        if case.proj:
            per_direction += 2 * case.T * case.B * P * case.H
        total += D * per_direction
    return total


def flops(case: Case, mode: str) -> int:
    """Forward work, or forward + backward: backward runs two products (dX and dW) per forward product."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return forward_flops(case) * (1 if mode == "fwd" else 3)


def default_sweep() -> list[Case]:
    cases = [Case(cell, *shape) for shape in STANDARD_SHAPES for cell in CELLS]
    cases += [Case("lstm", *shape, proj=shape[3] // 2) for shape in STANDARD_SHAPES]
    cases += [Case(cell, *shape, dtype="bfloat16") for shape in STANDARD_SHAPES[:-1] for cell in BF16_CELLS]
    return cases


def quick_sweep() -> list[Case]:
    cases = [Case(cell, *QUICK_SHAPE) for cell in CELLS]
    return cases + [Case("lstm", *QUICK_SHAPE, proj=QUICK_SHAPE[3] // 2), Case("lstm", *QUICK_SHAPE, dtype="bfloat16")]


def build_reference(case: Case, device: str) -> torch.nn.Module:
    """The torch.nn module of a case, with torch's default initialization under the current seed."""
    name, kwargs = _MODULES[case.cell]
    return getattr(torch.nn, name)(**_module_kwargs(case), **kwargs).to(device, DTYPES[case.dtype])


def build_fastrnn(case: Case, device: str, backend: str, reference: torch.nn.Module) -> torch.nn.Module:
    """The fastrnn drop-in of a case on ``backend``, holding exactly the reference's weights."""
    import fastrnn

    name, kwargs = _MODULES[case.cell]
    module = getattr(fastrnn, name)(**_module_kwargs(case), **kwargs, backend=backend)
    module.load_state_dict(reference.state_dict())
    return module.to(device, DTYPES[case.dtype])


def _module_kwargs(case: Case) -> dict:
    kwargs = dict(input_size=case.I, hidden_size=case.H, num_layers=case.layers, bidirectional=case.bidirectional)
    if case.proj:
        kwargs["proj_size"] = case.proj
    return kwargs


def make_inputs(case: Case, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The input sequence [T, B, I] and the gradient fed to the output in forward+backward (seeded)."""
    gen = torch.Generator().manual_seed(0)
    dtype = DTYPES[case.dtype]
    x = torch.randn(case.T, case.B, case.I, generator=gen).to(device, dtype)
    out_features = (2 if case.bidirectional else 1) * (case.proj or case.H)
    grad_out = torch.randn(case.T, case.B, out_features, generator=gen).to(device, dtype)
    return x, grad_out


def runner(module: torch.nn.Module, mode: str, x: torch.Tensor, grad_out: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The timed call. ``fwd`` is inference (no autograd graph); ``fwdbwd`` is a training step's
    forward and backward, with the input needing its gradient too (as under an embedding or a lower
    layer), so the backward runs both its dX and dW products. Returns the output / the input's gradient."""
    if mode == "fwd":
        def fwd() -> torch.Tensor:
            with torch.no_grad():
                return module(x)[0]
        return fwd
    x_req = x.detach().requires_grad_()
    params = [p for p in module.parameters() if p.requires_grad]

    def fwdbwd() -> torch.Tensor:
        out = module(x_req)[0]
        return torch.autograd.grad(out, [x_req, *params], grad_out)[0]
    return fwdbwd
