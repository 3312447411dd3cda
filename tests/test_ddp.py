"""DistributedDataParallel: two CPU processes (gloo) each training fastrnn.LSTM on half the batch reach
the parameters of one process trained on the whole batch."""
from __future__ import annotations

import datetime
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import fastrnn

WORLD = 2
STEPS = 4
# The CPU backends a user trains with (the emulated CUDA and interpreted Triton are kernel test rigs).
BACKENDS = [b for b in fastrnn.available_backends() if b in ("torch", "cpu")]


class Tagger(nn.Module):
    """A bidirectional two-layer LSTM with a per-step linear head: the usual sequence tagger."""

    def __init__(self, backend: str):
        super().__init__()
        self.lstm = fastrnn.LSTM(3, 6, num_layers=2, bidirectional=True, batch_first=True, backend=backend)
        self.head = nn.Linear(12, 2)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(STEPS):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, state: dict, x: torch.Tensor, y: torch.Tensor, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))
    try:
        trained = {}
        for backend in BACKENDS:
            model = Tagger(backend)
            model.load_state_dict(state)
            shard = slice(rank * len(x) // WORLD, (rank + 1) * len(x) // WORLD)
            _train(nn.parallel.DistributedDataParallel(model), x[shard], y[shard])
            trained[backend] = model.state_dict()
        if rank == 0:
            torch.save(trained, out)
    finally:
        dist.destroy_process_group()


def test_ddp_matches_single_process(tmp_path):
    """One spawn (process start-up dominates) trains a model per backend."""
    torch.manual_seed(0)
    state = Tagger("torch").state_dict()
    x, y = torch.randn(8, 5, 3), torch.randn(8, 5, 2)
    out = str(tmp_path / "rank0.pt")

    mp.spawn(_worker, args=(_free_port(), state, x, y, out), nprocs=WORLD, join=True)

    trained = torch.load(out)
    assert list(trained) == BACKENDS
    for backend in BACKENDS:
        model = Tagger(backend)
        model.load_state_dict(state)
        _train(model, x, y)  # one process, whole batch: the mean loss DDP's gradient averaging reproduces
        assert trained[backend].keys() == model.state_dict().keys()
        for name, value in model.state_dict().items():
            assert not torch.equal(value, state[name]), f"{backend}: {name} did not train"
            torch.testing.assert_close(trained[backend][name], value, msg=lambda m: f"{backend} {name}: {m}")
