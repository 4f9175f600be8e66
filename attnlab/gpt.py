"""A GPT: decoder-only, causal, with tied input and output embeddings.

It is a stack of the same pre-LN :class:`~attnlab.blocks.TransformerBlock` the course builds,
run with a causal mask. Attention uses PyTorch's fused ``scaled_dot_product_attention``
by default; ``fused=False`` (or asking for the attention maps) runs the written-out
version instead, with the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnlab import validate
from attnlab.blocks import TransformerBlock, check_token_ids, check_token_values
from attnlab.errors import InputError


@dataclass
class GPTConfig:
    """The sizes of a GPT."""

    vocab_size: int = 65
    block_size: int = 128  # longest context, in tokens
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    fused: bool = True


@dataclass
class GPTOutput:
    """What a forward pass returns."""

    logits: torch.Tensor  # (B, T, vocab)
    loss: torch.Tensor | None = None
    attentions: torch.Tensor | None = None  # (layers, B, heads, T, T) when asked for


class GPT(nn.Module):
    """Token + position embeddings → causal Transformer blocks → LayerNorm → next-token logits."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.n_embd, config.n_head, 4 * config.n_embd, config.dropout,
                             norm_first=True, activation="gelu", bias=config.bias, fused=config.fused)
            for _ in range(config.n_layer)
        )
        self.final_norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight  # weight tying: one matrix, read both ways
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_fused(self, fused: bool) -> None:
        """Switch every block between PyTorch's fused attention and the written-out one."""
        for block in self.blocks:
            block.attention.fused = fused

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_attention: bool = False) -> GPTOutput:
        """idx: (B, T) token ids → logits (B, T, vocab), loss if targets are given."""
        vocab, block = self.config.vocab_size, self.config.block_size
        check_token_ids(idx, vocab, block, self.token_embedding.weight.device, "idx", "block_size", check_values=False)
        named_ids = {"idx": idx}
        if targets is not None:
            check_token_ids(targets, vocab, block, idx.device, "targets", "block_size", check_values=False)
            if targets.shape != idx.shape:
                raise InputError(f"targets must have the shape of idx, {tuple(idx.shape)}, got {tuple(targets.shape)}: "
                                 "one next token per position.")
            named_ids["targets"] = targets
        check_token_values(named_ids, vocab)  # both at once: a GPU waits for one read back per step, not two
        length = idx.size(1)
        positions = torch.arange(length, device=idx.device)  # (T,)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        maps = []
        for block in self.blocks:
            x, weights = block(x, is_causal=True, need_weights=return_attention)
            maps.append(weights)
        logits = self.lm_head(self.final_norm(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        attentions = torch.stack(maps) if return_attention else None
        return GPTOutput(logits, loss, attentions)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend idx (B, T) by sampling one token at a time; returns (B, T + max_new_tokens).

        ``generator`` may live on another device than the model (a CPU generator for a CUDA
        model): the sampling then happens on the generator's device, the result on idx's.
        """
        max_new_tokens = validate.whole_number(max_new_tokens, "max_new_tokens")
        check_token_ids(idx[:, -self.config.block_size:] if isinstance(idx, torch.Tensor) and idx.dim() == 2 else idx,
                        self.config.vocab_size, self.config.block_size, self.token_embedding.weight.device, "idx", "block_size")
        if idx.size(1) == 0:
            raise InputError("idx is empty: give at least one token to start from, e.g. torch.zeros((1, 1), dtype=torch.long).")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InputError(f"generator must be a torch.Generator, not {type(generator).__name__}.")
        next_token_probabilities(idx.new_zeros((1, 1), dtype=torch.float), temperature, top_k, top_p)  # check them first
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size:]  # the model sees at most block_size tokens
            logits = self(context).logits[:, -1, :]  # (B, vocab): only the last position predicts
            probs = next_token_probabilities(logits, temperature, top_k, top_p)
            where = probs.device if generator is None else generator.device
            next_id = torch.multinomial(probs.to(where), num_samples=1, generator=generator).to(idx.device)  # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
        return idx


def next_token_probabilities(logits: torch.Tensor, temperature: float = 1.0,
                             top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Logits (B, vocab) → sampling probabilities after temperature, then top-k, then top-p (nucleus).

    ``temperature=0`` means greedy: probability 1 on the most likely token (the first, on a tie).
    """
    validate.tensor(logits, "logits", min_dims=1)
    greedy = isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature == 0
    temperature = 1.0 if greedy else validate.positive_number(temperature, "temperature")
    if top_k is not None:
        top_k = validate.whole_number(top_k, "top_k", minimum=1)
    if top_p is not None:
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise InputError(f"top_p must be a number in (0, 1], such as 0.9, got {top_p!r}.")
    if torch.isnan(logits).any():
        raise InputError("logits contain NaN (not a number): check the model's output.")
    if greedy:  # the limit of ever colder sampling: all the probability on the best token
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(logits.dtype)
    logits = logits / temperature
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token once the tokens before it already reach top_p (the best one always stays).
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.softmax(logits, dim=-1)
