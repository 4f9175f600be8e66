"""A tiny encoder–decoder that learns to reverse (or copy) a short sequence of digits.

Small enough to train in a few seconds on a CPU, so that a chapter can train it at build
time and show its cross-attention: which input position each output position reads.

    >>> reverser = train_reverser(steps=300)          # a Reverser: .model, .losses, ...
    >>> greedy_decode(reverser, torch.tensor([[1, 2, 3, 4, 5, 6]]))
    tensor([[6, 5, 4, 3, 2, 1]])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attnlab import validate
from attnlab.blocks import EncoderDecoder, check_token_ids
from attnlab.errors import InputError
from attnlab.render import progress as progress_bar

N_DIGITS = 10  #: source tokens are the digits 0–9
BOS = 10  #: the decoder's start token, "begin of sequence", the one id the source never uses
TASKS = ("reverse", "copy")



def _check_task(task: str) -> str:
    if task not in TASKS:
        raise InputError(f"task must be one of {TASKS}, not {task!r}.")
    return task


def make_batch(batch_size: int, length: int, generator: torch.Generator | None = None,
               task: str = "reverse") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random digit sequences: source (B, S), decoder input (B, S) = [BOS] + target[:-1], target (B, S)."""
    batch_size = validate.whole_number(batch_size, "batch_size", minimum=1)
    length = validate.whole_number(length, "length", minimum=1)
    task = _check_task(task)
    src = torch.randint(0, N_DIGITS, (batch_size, length), generator=generator)  # (B, S)
    target = src.flip(1) if task == "reverse" else src.clone()  # (B, S)
    bos = torch.full((batch_size, 1), BOS, dtype=torch.long)
    decoder_input = torch.cat([bos, target[:, :-1]], dim=1)  # (B, S): shifted right by one
    return src, decoder_input, target


@dataclass
class Reverser:
    """A trained tiny encoder–decoder and what its training measured."""

    model: EncoderDecoder
    losses: list[float]
    length: int
    task: str
    causal: bool


def train_reverser(steps: int = 300, length: int = 6, d_model: int = 32, n_heads: int = 1, n_layers: int = 1,
                   batch_size: int = 64, lr: float = 1e-2, seed: int = 0, task: str = "reverse",
                   causal: bool = True, progress: bool = True) -> Reverser:
    """Train an :class:`~attnlab.blocks.EncoderDecoder` on ``task`` with teacher forcing (on the CPU).

    ``causal=False`` trains the decoder without its causal mask: a mistake, for the exercise that
    measures what it costs.
    """
    steps = validate.whole_number(steps, "steps", minimum=1)
    length = validate.whole_number(length, "length", minimum=1)
    lr = validate.positive_number(lr, "lr")
    seed = validate.whole_number(seed, "seed")
    task = _check_task(task)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = EncoderDecoder(N_DIGITS, N_DIGITS + 1, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                           d_ff=4 * d_model, dropout=0.0, max_len=max(length, 16))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # matrices this small train faster on one thread than on several
    try:
        _train(model, optimiser, schedule, losses, steps, batch_size, length, generator, task, causal, progress)
    finally:
        torch.set_num_threads(threads)
    return Reverser(model.eval(), losses, length, task, causal)


def _train(model, optimiser, schedule, losses, steps, batch_size, length, generator, task, causal, progress):
    for _ in progress_bar(range(steps), desc=f"training the {task} model", disable=not progress):
        src, decoder_input, target = make_batch(batch_size, length, generator, task)
        logits = model(src, decoder_input, is_causal=causal)  # (B, S, vocab)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())


def _model(model) -> EncoderDecoder:
    model = model.model if isinstance(model, Reverser) else model
    if not isinstance(model, EncoderDecoder):
        raise InputError(f"give a Reverser or an EncoderDecoder, not {type(model).__name__}.")
    return model


@torch.no_grad()
def greedy_decode(model: Reverser | EncoderDecoder, src: torch.Tensor, n_tokens: int | None = None,
                  is_causal: bool = True) -> torch.Tensor:
    """Generate one token at a time, always the most likely, from [BOS]: source (B, S) → output (B, n_tokens)."""
    net = _model(model)
    device = net.generator.weight.device
    check_token_ids(src, N_DIGITS, net.position.table.size(0), device, "src")
    n_tokens = src.size(1) if n_tokens is None else validate.whole_number(n_tokens, "n_tokens", minimum=1)
    memory = net.encode(src)  # (B, S, C): the encoder runs once
    out = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=device)  # (B, 1)
    for _ in range(n_tokens):
        hidden = net.decoder(net.embed(net.tgt_embed, out), memory, is_causal=is_causal)  # (B, t, C)
        logits = net.generator(hidden[:, -1])  # (B, vocab): only the last position predicts
        logits[:, BOS] = float("-inf")  # never predict the start token
        out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
    return out[:, 1:]


@torch.no_grad()
def evaluate(model: Reverser | EncoderDecoder, length: int | None = None, n: int = 500, seed: int = 1234,
             task: str | None = None) -> dict[str, float]:
    """Accuracy on ``n`` fresh sequences: per token with teacher forcing, per token and per whole
    sequence when the model generates on its own (greedy)."""
    net = _model(model)
    length = model.length if length is None and isinstance(model, Reverser) else length
    task = (model.task if isinstance(model, Reverser) else "reverse") if task is None else task
    causal = model.causal if isinstance(model, Reverser) else True
    if length is None:
        raise InputError("give the sequence length to test on: evaluate(model, length=6).")
    device = net.generator.weight.device
    batch = make_batch(n, length, torch.Generator().manual_seed(seed), task)
    src, decoder_input, target = (t.to(device) for t in batch)  # the batch follows the model
    forced = net(src, decoder_input, is_causal=causal).argmax(-1)  # (n, S): fed the true previous tokens
    generated = greedy_decode(net, src, is_causal=causal)  # (n, S): fed its own previous tokens
    return {"teacher_forced": (forced == target).float().mean().item(),
            "generated": (generated == target).float().mean().item(),
            "whole_sequences": (generated == target).all(dim=1).float().mean().item()}


@torch.no_grad()
def cross_attention(model: Reverser | EncoderDecoder, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``src`` (B, S) greedily, then return (output ids (B, T), cross-attention weights
    (layers, B, heads, T, S)): row t is how output position t spread its attention over the input."""
    net = _model(model)
    output = greedy_decode(net, src)
    decoder_input = torch.cat([torch.full_like(output[:, :1], BOS), output[:, :-1]], dim=1)  # (B, T)
    net(src, decoder_input, need_weights=True)
    return output, net.decoder.attention_weights("cross")
