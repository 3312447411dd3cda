"""Backend choice: argument > use_backend block > FASTRNN_BACKEND > auto; clear errors otherwise."""
from __future__ import annotations

import pytest
import torch

import fastrnn
from fastrnn import backends
from fastrnn.backends import Backend


def test_precedence(monkeypatch):
    x = torch.empty(2)
    monkeypatch.setenv("FASTRNN_BACKEND", "torch")
    assert backends.select(x) is Backend.TORCH
    with fastrnn.use_backend("torch"):
        assert backends.select(x, "torch") is Backend.TORCH
    monkeypatch.delenv("FASTRNN_BACKEND")
    assert backends.select(x) is backends.select(x, "auto")


def test_use_backend_nests_and_restores():
    x = torch.empty(2)
    auto = backends.select(x)
    with fastrnn.use_backend("torch"):
        assert backends.select(x) is Backend.TORCH
        with fastrnn.use_backend("auto"):
            assert backends.select(x) is auto
        assert backends.select(x) is Backend.TORCH
    assert backends.select(x) is auto


def test_auto_never_fails_where_torch_runs():
    assert backends.select(torch.empty(2, dtype=torch.float16)) in (Backend.TORCH, Backend.CPU)
    m = fastrnn.LSTM(3, 4, dtype=torch.float16)
    out, _ = m(torch.randn(2, 1, 3, dtype=torch.float16))
    assert out.dtype == torch.float16


def test_auto_prefers_the_fused_cpu_backend_when_built():
    expected = Backend.CPU if "cpu" in fastrnn.available_backends() else Backend.TORCH
    assert backends.select(torch.empty(2)) is expected


@pytest.mark.parametrize("name", ["cuda", "nonsense"])
def test_bad_requests_raise_clearly(name, monkeypatch):
    x = torch.empty(2)
    if name == "nonsense":
        with pytest.raises(ValueError, match="unknown backend 'nonsense'"):
            fastrnn.LSTM(3, 4, backend=name)
        monkeypatch.setenv("FASTRNN_BACKEND", name)
        with pytest.raises(ValueError, match="FASTRNN_BACKEND"):
            backends.select(x)
    else:
        with pytest.raises(RuntimeError, match="backend 'cuda' .*cannot run this call"):
            fastrnn.LSTM(3, 4, backend=name)(torch.randn(2, 1, 3))


def test_env_forces_backend_in_modules(monkeypatch):
    monkeypatch.setenv("FASTRNN_BACKEND", "cuda")
    with pytest.raises(RuntimeError, match="from FASTRNN_BACKEND"):
        fastrnn.GRU(3, 4)(torch.randn(2, 1, 3))


def test_available_backends_lists_torch():
    assert "torch" in fastrnn.available_backends()
