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
PAD = 11  #: the padding id of chapter 8's padded batches: no digit, and never a target the loss counts
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


# ------------------------------------------------ chapter 8: training it properly, and watching it learn


def new_model(d_model: int = 32, n_heads: int = 1, n_layers: int = 1, dropout: float = 0.0, seed: int = 0,
              max_len: int = 16, padding: bool = False) -> EncoderDecoder:
    """The chapter's tiny :class:`~attnlab.blocks.EncoderDecoder` for digit tasks, its weights drawn from ``seed``.

    ``padding=True`` gives both embeddings a row for :data:`PAD`, for :func:`padded_batch`'s batches.
    """
    seed = validate.whole_number(seed, "seed")
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be a probability in [0, 1), got {dropout!r}.")
    torch.manual_seed(seed)
    extra = 1 if padding else 0
    return EncoderDecoder(N_DIGITS + 2 * extra, N_DIGITS + 1 + extra, d_model=d_model, n_heads=n_heads,
                          n_layers=n_layers, d_ff=4 * d_model, dropout=float(dropout), max_len=max_len)


def padded_batch(sources, task: str = "reverse", length: int | None = None):
    """Sources of different lengths as one batch, padded with :data:`PAD` at the end: (source (B, S),
    decoder input (B, S), target (B, S), source mask (B, 1, 1, S), True on the real tokens)."""
    from attnlab.attention import padding_mask

    task = _check_task(task)
    rows = [torch.as_tensor(s, dtype=torch.long).flatten() for s in sources]
    if not rows or any(r.numel() == 0 for r in rows):
        raise InputError("give at least one non-empty source, e.g. [[1, 2, 3], [4, 5]].")
    for r in rows:
        check_token_ids(r[None], N_DIGITS, 10 ** 6, r.device, "sources")
    lengths = [r.numel() for r in rows]
    length = max(lengths) if length is None else validate.whole_number(length, "length", minimum=max(lengths))
    src = torch.full((len(rows), length), PAD, dtype=torch.long)
    decoder_input, target = src.clone(), src.clone()
    for i, r in enumerate(rows):
        n = r.numel()
        want = r.flip(0) if task == "reverse" else r
        src[i, :n], target[i, :n] = r, want
        decoder_input[i, 0], decoder_input[i, 1:n] = BOS, want[:-1]
    return src, decoder_input, target, padding_mask(lengths, length)


def batches(batch_size: int, length: int, seed: int = 0, task: str = "reverse",
            device: str | torch.device = "cpu"):
    """A ``next_batch()`` for :func:`attnlab.train.train`: fresh random (source, decoder input, target)
    batches from a generator seeded with ``seed``, moved to ``device``."""
    validate.whole_number(batch_size, "batch_size", minimum=1)
    validate.whole_number(length, "length", minimum=1)
    _check_task(task)
    device = validate.device(device) or torch.device("cpu")
    generator = torch.Generator().manual_seed(validate.whole_number(seed, "seed"))

    def next_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(t.to(device) for t in make_batch(batch_size, length, generator, task))

    return next_batch


def sequence_loss(model: EncoderDecoder, batch, label_smoothing: float = 0.0) -> torch.Tensor:
    """Teacher-forced cross-entropy of a (source, decoder input, target[, source mask]) batch, averaged
    over every target token that is not :data:`PAD`."""
    src, decoder_input, target, *mask = batch
    logits = model(src, decoder_input, src_mask=mask[0] if mask else None)  # (B, T, vocab)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), ignore_index=PAD,
                           label_smoothing=label_smoothing)


def training_step(model: EncoderDecoder, batch, optimizer: torch.optim.Optimizer, max_norm: float = 1.0) -> float:
    """One step: forward, loss, backward, clip the whole gradient by its norm, update; returns the loss."""
    loss = sequence_loss(model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.item()


def expected_source(length: int, task: str = "reverse") -> torch.Tensor:
    """For each output position, the input position it must read: (length,)."""
    positions = torch.arange(validate.whole_number(length, "length", minimum=1))
    return positions.flip(0) if _check_task(task) == "reverse" else positions


def pattern_mass(weights: torch.Tensor, task: str = "reverse") -> float:
    """Mean cross-attention weight an output position puts on the input it must read (reverse: the
    anti-diagonal; copy: the diagonal). ``weights`` (..., T, S) with T == S; 1/S for an even spread."""
    weights = torch.as_tensor(weights)
    if weights.dim() < 2 or weights.size(-1) != weights.size(-2):
        raise InputError(f"weights must be (..., T, S) with T == S (one output per input), got {tuple(weights.shape)}.")
    want = expected_source(weights.size(-1), task).to(weights.device)
    return weights[..., torch.arange(weights.size(-1)), want].mean().item()


class AttentionSnapshots:
    """An ``evaluate`` callback for :func:`attnlab.train.train` that photographs cross-attention.

    Each call runs the model with teacher forcing on a fixed batch: ``example`` (S,) first, then
    ``n - 1`` random sources. It keeps the example's cross-attention map (T, S), head- and
    layer-averaged, in ``self.maps``, and returns the pattern mass over the whole batch and the
    teacher-forced accuracy.
    """

    def __init__(self, example: torch.Tensor, task: str = "reverse", n: int = 64, seed: int = 99):
        example = torch.as_tensor(example, dtype=torch.long).flatten()
        check_token_ids(example[None], N_DIGITS, 10 ** 6, example.device, "example")
        self.task = _check_task(task)
        n = validate.whole_number(n, "n", minimum=2)
        rest, _, _ = make_batch(n - 1, example.numel(), torch.Generator().manual_seed(seed), task)
        self.src = torch.cat([example[None], rest])  # (n, S): the example, then n - 1 random sources
        self.target = self.src.flip(1) if task == "reverse" else self.src.clone()
        bos = torch.full((self.src.size(0), 1), BOS, dtype=torch.long)
        self.decoder_input = torch.cat([bos, self.target[:, :-1]], dim=1)
        self.maps: list[torch.Tensor] = []

    @torch.no_grad()
    def __call__(self, model: EncoderDecoder) -> dict[str, float]:
        """Photograph ``model``'s cross-attention; return {"pattern_mass", "accuracy"}."""
        net = _model(model)
        device = net.generator.weight.device
        logits = net(self.src.to(device), self.decoder_input.to(device), need_weights=True)
        weights = net.decoder.attention_weights("cross").mean(dim=(0, 2)).cpu()  # (n, T, S): layers, heads averaged
        self.maps.append(weights[0])
        accuracy = (logits.argmax(-1).cpu() == self.target).float().mean().item()
        return {"pattern_mass": pattern_mass(weights, self.task), "accuracy": accuracy}


@torch.no_grad()
def confidence(model: Reverser | EncoderDecoder, length: int, task: str = "reverse", n: int = 500,
               seed: int = 1234, above: float | None = None) -> dict[str, float]:
    """How sure the model is on ``n`` held-out sequences (teacher forced, eval mode): mean and largest
    probability of its top token, mean entropy (nats), accuracy per token, and cross-entropy loss;
    with ``above``, also the share of tokens whose top probability exceeds it."""
    net = _model(model)
    device = net.generator.weight.device
    was_training = net.training
    net.eval()
    batch = make_batch(n, length, torch.Generator().manual_seed(seed), task)
    src, decoder_input, target = (t.to(device) for t in batch)
    logits = net(src, decoder_input)
    net.train(was_training)
    probs = logits.softmax(-1)  # (n, T, vocab)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1))
    top = probs.max(-1).values  # (n, T)
    result = {"max_probability": top.mean().item(), "largest_probability": top.max().item(),
              "entropy": entropy.mean().item(), "accuracy": (logits.argmax(-1) == target).float().mean().item(),
              "loss": loss.item()}
    if above is not None:
        result["share_above"] = (top > float(above)).float().mean().item()
    return result
