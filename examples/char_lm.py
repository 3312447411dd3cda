"""Character-level language model on the docstrings of Python's standard library, with fastrnn.

Truncated backpropagation through time: the text is cut into ``--batch-size`` parallel streams,
read ``--bptt`` characters at a time; the hidden state is carried from one chunk to the next and
detached, so gradients flow back one chunk only. Gradients are clipped. Each epoch prints the
training and validation perplexity and its time beside the same model on torch.nn; the end
samples text from a prefix. The corpus is built offline (importlib + inspect): no download.

    python examples/char_lm.py --cell lstm        # under a minute on 2 CPU cores
    python examples/char_lm.py --quick            # a smoke run
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import inspect
import io
import math
import sys
import time
import warnings

import torch
from torch import nn

import fastrnn

# Importing these opens windows or browsers, prints, or needs a display.
SKIP_MODULES = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"}
LAYERS = {"rnn": (fastrnn.RNN, nn.RNN), "lstm": (fastrnn.LSTM, nn.LSTM), "gru": (fastrnn.GRU, nn.GRU)}


def stdlib_docstrings(max_chars: int) -> str:
    """The docstrings of the public standard-library modules and their classes and functions, in name
    order, until ``max_chars`` characters."""
    parts, size = [], 0
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # platform-specific or optional modules
            continue
        objects = [module] + [obj for attr, obj in sorted(vars(module).items())
                              if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                              and getattr(obj, "__module__", None) == name]
        for obj in objects:
            doc = inspect.getdoc(obj)
            if doc:
                parts.append(doc + "\n\n")
                size += len(parts[-1])
        if size >= max_chars:
            break
    return "".join(parts)[:max_chars]


class CharLM(nn.Module):
    def __init__(self, layer: type[nn.Module], vocab: int, embed: int, hidden: int, layers: int, dropout: float,
                 **layer_kwargs):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = layer(embed, hidden, num_layers=layers, dropout=dropout, **layer_kwargs)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):  # tokens [T, B] -> logits [T, B, vocab]
        output, state = self.rnn(self.embed(tokens), state)
        return self.out(self.drop(output)), state


def detach(state):
    """The hidden state carried to the next chunk, cut from the graph of this one."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def streams(ids: torch.Tensor, batch: int) -> torch.Tensor:
    """[N] -> [N // batch, batch]: column j is the j-th contiguous slice of the text."""
    n = len(ids) // batch
    return ids[:n * batch].view(batch, n).t().contiguous()


def run_epoch(model, data, bptt, optimizer=None, clip=0.0, max_steps=None) -> float:
    """Mean cross-entropy over one pass of ``data`` ([N, B]); trains when given an optimizer."""
    model.train(optimizer is not None)
    state, total, count = None, 0.0, 0
    with torch.set_grad_enabled(optimizer is not None):
        for step, i in enumerate(range(0, len(data) - 1, bptt)):
            if max_steps is not None and step >= max_steps:
                break
            x, y = data[i:i + bptt], data[i + 1:i + 1 + bptt]
            x = x[:len(y)]
            logits, state = model(x, state)
            state = detach(state)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            if optimizer is not None:
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
            total += loss.item() * y.numel()
            count += y.numel()
    return total / count


@torch.no_grad()
def sample(model, prefix: str, length: int, stoi: dict, itos: list, temperature: float) -> str:
    model.eval()
    ids = torch.tensor([stoi.get(c, 0) for c in prefix]).unsqueeze(1)
    logits, state = model(ids)
    out = []
    for _ in range(length):
        probs = torch.softmax(logits[-1, 0] / temperature, -1)
        nxt = torch.multinomial(probs, 1)
        out.append(itos[nxt.item()])
        logits, state = model(nxt.view(1, 1), state)
    return prefix + "".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", choices=sorted(LAYERS), default="lstm")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="at most this many chunks per epoch")
    p.add_argument("--chars", type=int, default=400_000, help="corpus size in characters")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64, help="characters per truncated-BPTT chunk")
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clipping")
    p.add_argument("--prefix", default="Return the ")
    p.add_argument("--sample-chars", type=int, default=300)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--backend", default="auto", help="fastrnn backend: auto, cpu, torch, ...")
    p.add_argument("--no-compare", action="store_true", help="skip timing the same model on torch.nn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="1 epoch of 5 chunks on a small corpus: a smoke test")
    args = p.parse_args()
    if args.quick:
        args.epochs, args.steps, args.chars, args.sample_chars, args.hidden = 1, 5, 20_000, 40, 32

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    text = stdlib_docstrings(args.chars)
    itos = sorted(set(text))
    stoi = {c: i for i, c in enumerate(itos)}
    ids = torch.tensor([stoi[c] for c in text])
    split = int(0.9 * len(ids))
    train, valid = streams(ids[:split], args.batch_size), streams(ids[split:], args.batch_size)
    print(f"corpus: {len(text):,} characters of standard-library docstrings, {len(itos)} distinct "
          f"({time.perf_counter() - start:.1f} s)")

    fast_cls, torch_cls = LAYERS[args.cell]
    model = CharLM(fast_cls, len(itos), args.embed, args.hidden, args.layers, args.dropout, backend=args.backend)
    # The same model, same initial weights, on torch.nn: only for the time per epoch.
    twin = None if args.no_compare else CharLM(torch_cls, len(itos), args.embed, args.hidden, args.layers,
                                                args.dropout)
    if twin is not None:
        twin.load_state_dict(copy.deepcopy(model.state_dict()))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    twin_optimizer = None if twin is None else torch.optim.Adam(twin.parameters(), lr=args.lr)
    print(f"{args.cell.upper()} hidden {args.hidden} x {args.layers} layer(s), "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, fastrnn backend {args.backend}")

    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        train_loss = run_epoch(model, train, args.bptt, optimizer, args.clip, args.steps)
        t_fast = time.perf_counter() - t0
        valid_loss = run_epoch(model, valid, args.bptt, max_steps=args.steps)
        line = (f"epoch {epoch}/{args.epochs}  train ppl {math.exp(train_loss):7.2f}  "
                f"valid ppl {math.exp(valid_loss):7.2f}  time fastrnn {t_fast:6.2f} s")
        if twin is not None:
            t0 = time.perf_counter()
            run_epoch(twin, train, args.bptt, twin_optimizer, args.clip, args.steps)
            line += f"  torch.nn {time.perf_counter() - t0:6.2f} s"
        print(line, flush=True)

    print(f"sample from {args.prefix!r} at temperature {args.temperature}:")
    print(sample(model, args.prefix, args.sample_chars, stoi, itos, args.temperature))


if __name__ == "__main__":
    main()
