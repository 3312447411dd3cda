"""fastrnn.convert: every torch.nn recurrent layer of a nested model swapped in place, nothing else changed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import fastrnn
from fastrnn.backends import Backend

TWINS = {nn.RNN: fastrnn.RNN, nn.LSTM: fastrnn.LSTM, nn.GRU: fastrnn.GRU,
         nn.RNNCell: fastrnn.RNNCell, nn.LSTMCell: fastrnn.LSTMCell, nn.GRUCell: fastrnn.GRUCell}


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(6, 3, nonlinearity="relu", bias=False)
        self.cells = nn.ModuleDict({"lstm": nn.LSTMCell(6, 4), "gru": nn.GRUCell(6, 4, bias=False),
                                    "rnn": nn.RNNCell(6, 4, nonlinearity="relu")})


class Net(nn.Module):
    """Recurrent layers at every depth and in every container kind, with non-default settings."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
        self.rnns = nn.ModuleList([
            nn.LSTM(6, 5, num_layers=2, bidirectional=True, batch_first=True, proj_size=3, dropout=0.25),
            nn.GRU(6, 4, bias=False, batch_first=True),
        ])
        self.inner = Inner()
        self.stack = nn.Sequential(nn.Sequential(nn.RNN(6, 2, num_layers=2, batch_first=True)))

    def forward(self, x):  # x: [B, T, 4]
        e = self.encoder(x)
        outs = [self.rnns[0](e)[0], self.rnns[1](e)[0], self.stack[0][0](e)[0],
                self.inner.rnn(e.transpose(0, 1))[0].transpose(0, 1)]
        step = e[:, 0]
        h, c = self.inner.cells["lstm"](step)
        outs += [h, c, self.inner.cells["gru"](step, h), self.inner.cells["rnn"](step)]
        return torch.cat([o.flatten(1) for o in outs], 1)


def _cases():
    """(backend, dtype): every backend in float32, float64 once."""
    fused = [pytest.param(p.values[0][0].value, torch.float32, id=f"{p.id}-float32", marks=p.marks)
             for p in __import__("conftest").FUSED]
    return [pytest.param("torch", torch.float32, id="torch-float32"),
            pytest.param("torch", torch.float64, id="torch-float64")] + fused


def _recurrent(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, (nn.RNNBase, nn.RNNCellBase))}


@pytest.mark.parametrize("backend,dtype", _cases())
def test_convert_nested_model(backend, dtype):
    torch.manual_seed(0)
    model = Net().to(dtype).eval()
    x = torch.randn(3, 5, 4, dtype=dtype)
    before = model(x)
    keys = list(model.state_dict())
    params = dict(model.named_parameters())
    settings = {name: (type(m), {k: v for k, v in vars(m).items() if not k.startswith("_")})
                for name, m in _recurrent(model).items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    assert fastrnn.convert(model, backend=backend) is model
    converted = _recurrent(model)
    assert converted.keys() == settings.keys()
    for name, m in converted.items():
        old_type, old_settings = settings[name]
        assert type(m) is TWINS[old_type], name
        assert m.backend is Backend(backend)
        assert {k: v for k, v in vars(m).items() if k in old_settings} == old_settings, name
        assert not m.training
    assert list(model.state_dict()) == keys
    assert all(p is params[n] for n, p in model.named_parameters()) and len(params) == len(list(model.parameters()))
    after = model(x)
    assert after.dtype == dtype
    torch.testing.assert_close(after, before)

    # The optimizer built before conversion still trains the converted model.
    model.train()
    model(x).square().sum().backward()
    assert all(p.grad is not None for p in params.values())
    old = model.rnns[0].weight_hh_l0.detach().clone()
    optimizer.step()
    assert not torch.equal(model.rnns[0].weight_hh_l0, old)


def test_convert_keeps_training_mode_hooks_and_sharing():
    shared = nn.GRU(3, 4)
    model = nn.Sequential(shared, shared)
    calls = []
    shared.register_forward_hook(lambda mod, inp, out: calls.append(type(mod)))
    model.train()
    fastrnn.convert(model)
    assert model[0] is model[1] and type(model[0]) is fastrnn.GRU
    assert model[0].training
    model[0](torch.randn(2, 1, 3))
    assert calls == [fastrnn.GRU]
    # The original module is left working and independent of its twin.
    assert type(shared) is nn.GRU and shared(torch.randn(2, 1, 3))[0].shape == (2, 1, 4)


def test_convert_root_layer_returns_twin():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    twin = fastrnn.convert(lstm, backend="torch")
    assert type(twin) is fastrnn.LSTM and twin.num_layers == 2
    torch.testing.assert_close(twin(x)[0], lstm(x)[0])


def test_convert_leaves_subclasses_and_fastrnn_modules():
    class MyLSTM(nn.LSTM):
        pass

    model = nn.ModuleList([MyLSTM(2, 3), fastrnn.GRU(2, 3)])
    before = list(model)
    fastrnn.convert(model)
    assert [m for m in model] == before


def test_convert_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        fastrnn.convert(nn.Sequential(nn.GRU(2, 3)), backend="nope")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fastrnn.convert(nn.GRU)
