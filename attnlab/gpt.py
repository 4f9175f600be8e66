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

from attnlab.blocks import TransformerBlock


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
        length = idx.size(1)
        if length > self.config.block_size:
            raise ValueError(f"sequence of {length} tokens is longer than block_size={self.config.block_size}")
        positions = torch.arange(length, device=idx.device)  # (T,)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        maps = []
        for block in self.blocks:
            x, weights = block(x, is_causal=True, need_weights=return_attention)
            maps.append(weights)
        logits = self.lm_head(self.final_norm(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        attentions = torch.stack(maps) if return_attention else None
        return GPTOutput(logits, loss, attentions)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend idx (B, T) by sampling one token at a time; returns (B, T + max_new_tokens)."""
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size:]  # the model sees at most block_size tokens
            logits = self(context).logits[:, -1, :]  # (B, vocab): only the last position predicts
            probs = next_token_probabilities(logits, temperature, top_k, top_p)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat((idx, next_id), dim=1)
        return idx


def next_token_probabilities(logits: torch.Tensor, temperature: float = 1.0,
                             top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Logits (B, vocab) → sampling probabilities after temperature, top-k and top-p (nucleus)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = logits / temperature
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token once the tokens before it already reach top_p (the best one always stays).
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return torch.softmax(logits, dim=-1)
