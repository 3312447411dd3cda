"""Autograd beyond what cuDNN allows: backward in eval mode, double backward (gradient penalties),
torch.func.functional_call with weights other than the module's, and torch.func's transforms. Against
torch.nn on CPU."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, vmap

import fastrnn
from _models import flatten, make_input, twins
from fastrnn.backends import triton_interpreted

BACKENDS = [pytest.param("torch", id="torch")] + [
    pytest.param(p.values[0][0].value, id=p.id, marks=p.marks) for p in __import__("conftest").FUSED]
FAMILIES = ("rnn_relu", "lstm_proj", "gru")


def _grads(model, build, leaves, create_graph=False):
    outs = flatten(model(*build()))
    return torch.autograd.grad(sum((o * o.detach().cos()).sum() for o in outs), leaves + list(model.parameters()),
                               create_graph=create_graph)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", FAMILIES)
def test_backward_in_eval_mode(cell, backend):
    ref, fast = twins(cell, backend=backend, num_layers=2, dropout=0.5)
    ref.eval(), fast.eval()
    build, leaves = make_input("padded", ref)
    names = ["input", "h0", "c0"][:len(leaves)] + [n for n, _ in ref.named_parameters()]
    for name, a, b in zip(names, _grads(fast, build, leaves), _grads(ref, build, leaves), strict=True):
        torch.testing.assert_close(a, b, msg=lambda m: f"grad {name}: {m}")


def _gradient_penalty(model, build, leaves):
    """``d/d(everything) of |d loss / d input|``, the second-order gradient a WGAN-GP style penalty needs."""
    first = _grads(model, build, leaves, create_graph=True)
    penalty = first[0].norm() + sum(g.square().sum() for g in first[len(leaves):])
    return torch.autograd.grad(penalty, leaves + list(model.parameters()))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell,kind,bidirectional", [(c, "padded", False) for c in FAMILIES]
                         + [("lstm", "packed_unsorted", True)])
def test_double_backward_matches_torch(cell, kind, bidirectional, backend):
    # float64: torch.nn's float32 CPU LSTM runs oneDNN, whose backward is not differentiable twice.
    ref, fast = twins(cell, backend=backend, dtype=torch.float64, bidirectional=bidirectional)
    build, leaves = make_input(kind, ref, dtype=torch.float64)
    names = ["input", "h0", "c0"][:len(leaves)] + [n for n, _ in ref.named_parameters()]
    for name, a, b in zip(names, _gradient_penalty(fast, build, leaves), _gradient_penalty(ref, build, leaves),
                          strict=True):
        torch.testing.assert_close(a, b, msg=lambda m: f"second-order grad {name}: {m}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradgradcheck(backend):
    """The second derivatives are those of the function itself, not just equal to torch.nn's."""
    if backend == "triton" and triton_interpreted():
        pytest.skip("~150 interpreted Triton forwards: too slow; test_double_backward_matches_torch covers triton")
    _, fast = twins("gru", backend=backend, input_size=2, hidden=3, dtype=torch.float64)
    weights = [w.detach().requires_grad_() for w in fast._flat_weights]
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)

    def run(x, *weights):
        out, h = fastrnn.functional.gru(x, None, list(weights), backend=backend)
        return out, h

    assert torch.autograd.gradgradcheck(run, (x, *weights))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", ("rnn_tanh", "lstm", "gru"))
def test_functional_call_with_other_weights(cell, backend):
    ref, fast = twins(cell, backend=backend, num_layers=2, bidirectional=True)
    own = {n: p.detach().clone() for n, p in fast.named_parameters()}
    other = {n: (torch.randn_like(p) * 0.3).requires_grad_() for n, p in fast.named_parameters()}
    ref.load_state_dict(other)
    build, leaves = make_input("padded", ref)

    got = flatten(functional_call(fast, other, build()))
    expected = flatten(ref(*build()))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)
    grads = torch.autograd.grad(sum(t.sum() for t in got), list(other.values()))
    expected_grads = torch.autograd.grad(sum(t.sum() for t in expected), list(ref.parameters()))
    for name, a, b in zip(other, grads, expected_grads, strict=True):
        torch.testing.assert_close(a, b, msg=lambda m: f"grad {name}: {m}")
    # The module's own parameters are untouched and used again afterwards.
    assert all(torch.equal(p, own[n]) for n, p in fast.named_parameters())
    ref.load_state_dict(own)
    for a, b in zip(flatten(fast(*build())), flatten(ref(*build()))):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize("cell", ("rnn_tanh", "lstm_proj", "gru"))
def test_frozen_weights_and_input_without_grad(cell, backend):
    """The layer's autograd node skips the products nobody asked for and gives the rest as torch.nn,
    each bias its own gradient tensor."""
    ref, fast = twins(cell, backend=backend, num_layers=2)
    for model in (ref, fast):
        model.weight_ih_l0.requires_grad_(False)
        model.weight_hh_l1.requires_grad_(False)
    x = torch.randn(5, 3, 4)
    for model in (ref, fast):
        out, _ = model(x)
        (out * out.detach().cos()).sum().backward()
    for (name, a), b in zip(fast.named_parameters(), ref.parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, msg=lambda m: f"grad {name}: {m}")
    assert fast.bias_ih_l0.grad.data_ptr() != fast.bias_hh_l0.grad.data_ptr()


@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize("cell", ("rnn_relu", "lstm_proj", "gru"))
def test_layer_gradcheck_packed_reverse(cell, backend):
    """float64 gradcheck of one packed, reversed layer: projection, recurrence and their joint backward."""
    if backend == "triton" and triton_interpreted():
        pytest.skip("~100 interpreted Triton forwards: too slow; test_modules covers triton's gradients")
    _, fast = twins(cell, backend=backend, input_size=2, hidden=4, dtype=torch.float64, bidirectional=True)
    weights = [w.detach().requires_grad_() for w in fast._flat_weights]
    lengths = torch.tensor([3, 2, 1])
    x = torch.randn(3, 3, 2, dtype=torch.float64, requires_grad=True)
    fn = getattr(fastrnn.functional, fast._mode)

    def run(x, *weights):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths)
        out, state = fn(packed, None, list(weights), bidirectional=True, backend=backend)
        return (out.data, *(state if isinstance(state, tuple) else (state,)))

    assert torch.autograd.gradcheck(run, (x, *weights))


@pytest.mark.parametrize("cell", ("rnn_tanh", "lstm_proj", "gru"))
def test_torch_func_grad(cell):
    """Under torch.func.grad the automatic choice is the torch backend (the fused backends' autograd nodes
    do not support torch.func's transforms): torch.nn's gradients, not an error."""
    ref, fast = twins(cell, num_layers=2, bidirectional=True)
    x = torch.randn(6, 3, 4)
    params = {name: p.detach() for name, p in ref.named_parameters()}

    def loss(model):
        return lambda p: functional_call(model, p, (x,))[0].square().sum()

    got, want = grad(loss(fast))(params), grad(loss(ref))(params)
    for name in params:
        torch.testing.assert_close(got[name], want[name], msg=lambda m: f"grad {name}: {m}")


def test_torch_func_vmap():
    """vmap over a batch of sequences (torch.nn's modules have no batching rule): each sample's own call."""
    _, fast = twins("lstm", bidirectional=True)
    xs = torch.randn(4, 6, 3, 4)
    with torch.no_grad():
        torch.testing.assert_close(vmap(lambda x: fast(x)[0])(xs), torch.stack([fast(x)[0] for x in xs]))


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_named_backend_under_torch_func(backend):
    """A fused backend asked for by name says why it cannot run under a torch.func transform."""
    _, fast = twins("gru", backend=backend)
    params = {name: p.detach() for name, p in fast.named_parameters()}
    with pytest.raises(RuntimeError, match="torch.func transform"):
        grad(lambda p: functional_call(fast, p, (torch.randn(5, 2, 4),))[0].sum())(params)
