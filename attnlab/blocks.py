"""The Transformer's building blocks, one concept per class.

Every block can load the weights of PyTorch's own layer (the ``load_from_torch_*``
functions) and then computes the same numbers; the tests prove it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from attnlab import validate
from attnlab.attention import causal_mask, check_mask, scaled_dot_product_attention
from attnlab.errors import InputError


def _combine(mask: torch.Tensor | None, causal: torch.Tensor | None) -> torch.Tensor | None:
    """Both boolean masks (True = may attend), or whichever is given."""
    if mask is None or causal is None:
        return causal if mask is None else mask
    return mask & causal


class MultiHeadAttention(nn.Module):
    """Project to queries, keys, values; split into heads; attend; concatenate; project out."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, fused: bool = True):
        super().__init__()
        d_model = validate.whole_number(d_model, "d_model", minimum=1)
        n_heads = validate.whole_number(n_heads, "n_heads", minimum=1)
        if d_model % n_heads:
            raise InputError(f"d_model={d_model} is not divisible by n_heads={n_heads}: "
                             "each head gets d_model / n_heads features, so pick n_heads that divides d_model.")
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.fused = fused  # PyTorch's fused kernel unless weights are asked for

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, H, T, C/H)."""
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, C/H) → (B, T, C): the heads side by side again."""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_dim)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Self-attention's q, k, v of x (B, T, C): the same numbers as q_proj(x), k_proj(x), v_proj(x).

        The three projections read the same x, so they are done as ONE matrix multiply with
        the three weights stacked (3C, C): one kernel instead of three, which is what a small
        model's training step is short of. The parameters stay three separate layers, and
        the written-out path (``fused=False`` or ``need_weights``) still calls each one, so
        that every projection shows up as itself (chapter 5 counts their FLOPs per layer).
        """
        weight = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))  # (3C, C)
        bias = None if self.q_proj.bias is None else torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias))
        return F.linear(x, weight, bias).split(self.d_model, dim=-1)  # (B, T, C) each

    def forward(
        self,
        query: torch.Tensor,
        key_value: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention (``key_value=None``) or cross-attention; returns (output, per-head weights).

        ``is_causal`` lets query i see keys 0..i (aligned top-left, as in PyTorch), in both the
        fused and the written-out path, for self- and cross-attention alike.
        """
        self._check_input(query, "query")
        source = query if key_value is None else self._check_input(key_value, "key_value")
        if source is not query and (source.size(0) != query.size(0) or source.device != query.device):
            raise InputError(f"key_value must be a batch of the same size, on the same device, as query: got "
                             f"{tuple(source.shape)} on {source.device} and {tuple(query.shape)} on {query.device}.")
        if key_value is None and self.fused and not need_weights:  # the trainer's path: one multiply, see project_qkv
            q, k, v = (self.split_heads(x) for x in self.project_qkv(query))  # (B, H, T, hd) each
        else:
            q = self.split_heads(self.q_proj(query))  # (B, H, T_q, hd)
            k = self.split_heads(self.k_proj(source))  # (B, H, T_k, hd)
            v = self.split_heads(self.v_proj(source))  # (B, H, T_k, hd)
        dropout = self.dropout if self.training else 0.0
        fused_causal = self.fused and not need_weights and mask is None and is_causal and q.size(-2) == k.size(-2)
        # The fused kernel applies is_causal itself: build the (T_q, T_k) mask only where it is read.
        causal = causal_mask(q.size(-2), device=q.device, n_keys=k.size(-2)) if is_causal and not fused_causal else None
        if fused_causal:
            out, weights = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True), None
        elif self.fused and not need_weights:
            if mask is not None:  # the fused kernel's own errors are not written for learners
                check_mask(mask, q, k)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=_combine(mask, causal), dropout_p=dropout)
            weights = None
        else:
            out, weights = scaled_dot_product_attention(q, k, v, _combine(mask, causal), dropout, self.training)
        return self.out_proj(self.merge_heads(out)), weights  # (B, T_q, C), (B, H, T_q, T_k)

    def _check_input(self, x, name: str):
        validate.tensor(x, name, min_dims=0)
        if x.dim() != 3 or x.size(-1) != self.d_model:
            raise InputError(f"{name} must be (batch, tokens, {self.d_model}) for this layer of width d_model="
                             f"{self.d_model}, got shape {tuple(x.shape)}.")
        weight = self.q_proj.weight
        autocast = torch.is_autocast_enabled(x.device.type)  # there, mixed dtypes are the point
        if x.device != weight.device or (x.dtype != weight.dtype and not autocast):
            raise InputError(f"{name} is {x.dtype} on {x.device} but the layer's weights are "
                             f"{self.q_proj.weight.dtype} on {self.q_proj.weight.device}: "
                             f"use {name}.to(layer.q_proj.weight) or move the layer.")
        return x


class FeedForward(nn.Module):
    """Position-wise: the same two-layer network applied to every token on its own."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation: str = "relu", bias: bool = True):
        super().__init__()
        self.expand = nn.Linear(d_model, d_ff, bias=bias)
        choices = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in choices:
            raise InputError(f"activation {activation!r} is not one the course knows: use 'relu' or 'gelu'.")
        self.activation = choices[activation]()
        self.dropout = nn.Dropout(dropout)
        self.contract = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, T, C)."""
        return self.contract(self.dropout(self.activation(self.expand(x))))


class TransformerBlock(nn.Module):
    """Self-attention then feed-forward, each wrapped in a residual connection and LayerNorm.

    ``norm_first=False`` is the 2017 paper's post-LN: x = LN(x + sublayer(x)).
    ``norm_first=True`` is today's pre-LN: x = x + sublayer(LN(x)), easier to train deep.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 norm_first: bool = True, activation: str = "relu", bias: bool = True,
                 layer_norm_eps: float = 1e-5, fused: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.attention = MultiHeadAttention(d_model, n_heads, dropout, bias, fused)
        self.feed_forward = FeedForward(d_model, d_ff or 4 * d_model, dropout, activation, bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, is_causal: bool = False,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, C) → (B, T, C), and the attention weights if asked for."""
        if self.norm_first:
            attended, weights = self.attention(self.norm1(x), mask=mask, is_causal=is_causal, need_weights=need_weights)
            x = x + self.dropout1(attended)
            x = x + self.dropout2(self.feed_forward(self.norm2(x)))
        else:
            attended, weights = self.attention(x, mask=mask, is_causal=is_causal, need_weights=need_weights)
            x = self.norm1(x + self.dropout1(attended))
            x = self.norm2(x + self.dropout2(self.feed_forward(x)))
        return x, weights


class DecoderBlock(nn.Module):
    """Masked self-attention, then cross-attention to the encoder's output, then feed-forward.

    After a call with ``need_weights=True`` the block keeps the per-head weights of that call in
    ``self_weights`` (B, H, T, T) and ``cross_weights`` (B, H, T, S); otherwise both are None.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int | None = None, dropout: float = 0.0,
                 norm_first: bool = True, activation: str = "relu", bias: bool = True,
                 layer_norm_eps: float = 1e-5, fused: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.self_attention = MultiHeadAttention(d_model, n_heads, dropout, bias, fused)
        self.cross_attention = MultiHeadAttention(d_model, n_heads, dropout, bias, fused)
        self.feed_forward = FeedForward(d_model, d_ff or 4 * d_model, dropout, activation, bias)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(3))
        self.self_weights: torch.Tensor | None = None
        self.cross_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, is_causal: bool = True,
                need_weights: bool = False) -> torch.Tensor:
        """x: (B, T, C) target so far; memory: (B, S, C) encoder output → (B, T, C)."""
        if not isinstance(need_weights, bool):
            raise InputError(f"need_weights must be True or False, not {need_weights!r}.")
        self.self_weights = self.cross_weights = None

        def self_attend(h):
            out, self.self_weights = self.self_attention(h, mask=self_mask, is_causal=is_causal,
                                                         need_weights=need_weights)
            return out

        def cross_attend(h):
            out, self.cross_weights = self.cross_attention(h, memory, mask=memory_mask, need_weights=need_weights)
            return out

        if self.norm_first:
            x = x + self.dropout1(self_attend(self.norm1(x)))
            x = x + self.dropout2(cross_attend(self.norm2(x)))
            x = x + self.dropout3(self.feed_forward(self.norm3(x)))
        else:
            x = self.norm1(x + self.dropout1(self_attend(x)))
            x = self.norm2(x + self.dropout2(cross_attend(x)))
            x = self.norm3(x + self.dropout3(self.feed_forward(x)))
        return x


class Encoder(nn.Module):
    """A stack of Transformer blocks; pre-LN stacks end with one more LayerNorm."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None,
                 dropout: float = 0.0, norm_first: bool = True, **block_options):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, n_heads, d_ff, dropout, norm_first, **block_options) for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, C) → (B, S, C)."""
        for block in self.blocks:
            x, _ = block(x, mask=mask)
        return self.final_norm(x)


class Decoder(nn.Module):
    """A stack of decoder blocks; pre-LN stacks end with one more LayerNorm."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int | None = None,
                 dropout: float = 0.0, norm_first: bool = True, **block_options):
        super().__init__()
        self.blocks = nn.ModuleList(
            DecoderBlock(d_model, n_heads, d_ff, dropout, norm_first, **block_options) for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, is_causal: bool = True,
                need_weights: bool = False) -> torch.Tensor:
        """(B, T, C) and memory (B, S, C) → (B, T, C); ``need_weights`` keeps each block's weights."""
        for block in self.blocks:
            x = block(x, memory, self_mask=self_mask, memory_mask=memory_mask, is_causal=is_causal,
                      need_weights=need_weights)
        return self.final_norm(x)

    def attention_weights(self, which: str = "cross") -> torch.Tensor:
        """Every block's weights from the last call with ``need_weights=True``: (layers, B, H, T, S or T).

        ``which`` is "cross" (decoder queries over encoder keys) or "self" (masked self-attention).
        """
        if which not in ("cross", "self"):
            raise InputError(f"which must be 'cross' or 'self', not {which!r}.")
        maps = [getattr(block, f"{which}_weights") for block in self.blocks]
        if any(m is None for m in maps):
            raise InputError("no attention weights are kept: run the decoder with need_weights=True first.")
        return torch.stack(maps)


class EncoderDecoder(nn.Module):
    """The 2017 encoder–decoder design: embed source and target, encode, decode, predict tokens.

    Pre-LN by default (``norm_first=True``, today's choice); ``norm_first=False`` is the 2017 paper's post-LN.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 128, n_heads: int = 4,
                 n_layers: int = 2, d_ff: int | None = None, dropout: float = 0.1,
                 norm_first: bool = True, max_len: int = 512):
        super().__init__()
        from attnlab.positional import SinusoidalPositionalEncoding

        self.d_model = d_model
        self.src_embed = nn.Embedding(src_vocab, d_model)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model)
        self.position = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        self.encoder = Encoder(n_layers, d_model, n_heads, d_ff, dropout, norm_first)
        self.decoder = Decoder(n_layers, d_model, n_heads, d_ff, dropout, norm_first)
        self.generator = nn.Linear(d_model, tgt_vocab)

    def embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) → embeddings scaled by √d_model plus positions (B, T, C)."""
        check_token_ids(ids, table.num_embeddings, self.position.table.size(0), table.weight.device)
        return self.position(table(ids) * math.sqrt(self.d_model))

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source ids (B, S) → memory (B, S, C)."""
        return self.encoder(self.embed(self.src_embed, src), mask=src_mask)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None,
                is_causal: bool = True, need_weights: bool = False) -> torch.Tensor:
        """Source (B, S) and target so far (B, T) → next-token logits (B, T, tgt_vocab).

        ``src_mask`` (B, 1, 1, S) marks real source tokens (see :func:`attnlab.attention.padding_mask`).
        ``is_causal=False`` drops the decoder's causal mask (a mistake, for experiments only);
        ``need_weights=True`` keeps the decoder's weights: ``model.decoder.attention_weights("cross")``.
        """
        memory = self.encode(src, src_mask)
        hidden = self.decoder(self.embed(self.tgt_embed, tgt), memory, memory_mask=src_mask,
                              is_causal=is_causal, need_weights=need_weights)
        return self.generator(hidden)


def check_token_ids(ids, vocab_size: int, max_len: int, device, what: str = "token ids",
                    limit: str = "max_len", check_values: bool = True) -> None:
    """A friendly InputError unless ``ids`` is a (B, T) integer tensor of valid ids the model can read.

    ``check_values=False`` checks everything but the ids' range, which costs a read back from a
    GPU: a caller with several id tensors checks their ranges together with :func:`check_token_values`.
    """
    validate.tensor(ids, what, min_dims=0, floating=False)
    if ids.dim() != 2:
        raise InputError(f"{what} must be (batch, tokens), got shape {tuple(ids.shape)}: "
                         "for one sequence use ids[None] or ids.unsqueeze(0).")
    if ids.dtype in (torch.bool,) or ids.is_floating_point() or ids.is_complex():
        raise InputError(f"{what} must be whole numbers (torch.long), not {ids.dtype}: use ids.long().")
    if ids.size(1) > max_len:
        raise InputError(f"a sequence of {ids.size(1)} tokens is longer than the model's {limit}={max_len}: "
                         f"cut it, for example ids[:, -{max_len}:].")
    if ids.device != torch.device(device):
        raise InputError(f"{what} are on {ids.device} but the model is on {device}: use ids.to({str(device)!r}).")
    if check_values:
        check_token_values({what: ids}, vocab_size)


def check_token_values(named_ids: dict[str, torch.Tensor], vocab_size: int) -> None:
    """A friendly InputError unless every tensor of ids holds values in 0..vocab_size-1; one GPU read back in all."""
    tensors = [t.flatten() for t in named_ids.values() if t.numel()]
    if not tensors:
        return
    low, high = torch.stack(torch.cat(tensors).aminmax()).tolist()  # one read back, not one per tensor
    if low >= 0 and high < vocab_size:
        return
    for what, ids in named_ids.items():  # only now, on the way to an error, find which one it was
        low, high = torch.stack(ids.aminmax()).tolist() if ids.numel() else (0, 0)
        if low < 0 or high >= vocab_size:
            raise InputError(f"{what} must be between 0 and {vocab_size - 1} (the vocabulary has {vocab_size} "
                             f"entries), got values from {low} to {high}.")


# ------------------------------------------------ loading PyTorch's own layers' weights


@torch.no_grad()
def load_from_torch_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> MultiHeadAttention:
    """Copy an ``nn.MultiheadAttention``'s weights (packed q/k/v) into ours."""
    for proj, weight in zip((ours.q_proj, ours.k_proj, ours.v_proj), theirs.in_proj_weight.chunk(3)):
        proj.weight.copy_(weight)
    if theirs.in_proj_bias is not None:
        for proj, bias in zip((ours.q_proj, ours.k_proj, ours.v_proj), theirs.in_proj_bias.chunk(3)):
            proj.bias.copy_(bias)
    ours.out_proj.load_state_dict(theirs.out_proj.state_dict())
    return ours


@torch.no_grad()
def _load_feed_forward(ours: FeedForward, theirs: nn.Module) -> None:
    ours.expand.load_state_dict(theirs.linear1.state_dict())
    ours.contract.load_state_dict(theirs.linear2.state_dict())


def _same_norm_first(ours: nn.Module, theirs: nn.Module, our_name: str, their_name: str) -> None:
    """A friendly InputError when the two layers put their LayerNorms in different places."""
    if bool(ours.norm_first) != bool(theirs.norm_first):
        raise InputError(f"the {their_name} has norm_first={theirs.norm_first} but our {our_name} has "
                         f"norm_first={ours.norm_first}: their LayerNorms sit in different places, so the weights "
                         f"would load but the outputs differ. Build ours with norm_first={theirs.norm_first}.")


@torch.no_grad()
def load_from_torch_encoder_layer(ours: TransformerBlock, theirs: nn.TransformerEncoderLayer) -> TransformerBlock:
    """Copy an ``nn.TransformerEncoderLayer``'s weights into a block built with the same sizes."""
    _same_norm_first(ours, theirs, "TransformerBlock", "nn.TransformerEncoderLayer")
    load_from_torch_mha(ours.attention, theirs.self_attn)
    _load_feed_forward(ours.feed_forward, theirs)
    ours.norm1.load_state_dict(theirs.norm1.state_dict())
    ours.norm2.load_state_dict(theirs.norm2.state_dict())
    return ours


@torch.no_grad()
def load_from_torch_decoder_layer(ours: DecoderBlock, theirs: nn.TransformerDecoderLayer) -> DecoderBlock:
    """Copy an ``nn.TransformerDecoderLayer``'s weights into a decoder block of the same sizes."""
    _same_norm_first(ours, theirs, "DecoderBlock", "nn.TransformerDecoderLayer")
    load_from_torch_mha(ours.self_attention, theirs.self_attn)
    load_from_torch_mha(ours.cross_attention, theirs.multihead_attn)
    _load_feed_forward(ours.feed_forward, theirs)
    for name in ("norm1", "norm2", "norm3"):
        getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())
    return ours


@torch.no_grad()
def load_from_torch_transformer(encoder: Encoder, decoder: Decoder, theirs: nn.Transformer) -> tuple[Encoder, Decoder]:
    """Copy an ``nn.Transformer``'s two stacks (every layer and both final LayerNorms) into ours."""
    for ours, stack, what in ((encoder, theirs.encoder, "encoder"), (decoder, theirs.decoder, "decoder")):
        if len(ours.blocks) != len(stack.layers):
            depth = len(stack.layers)
            raise InputError(f"the {what}s have different depths: ours {len(ours.blocks)} blocks, "
                             f"nn.Transformer's {depth} layers; build ours with n_layers={depth}.")
        if isinstance(ours.final_norm, nn.Identity) or stack.norm is None:
            raise InputError(f"nn.Transformer ends its {what} with one more LayerNorm whether norm_first is True "
                             "or False, but our stacks have it only when norm_first=True: build ours with "
                             "norm_first=True, and nn.Transformer with norm_first=True to compute the same numbers.")
        load = load_from_torch_encoder_layer if what == "encoder" else load_from_torch_decoder_layer
        for block, layer in zip(ours.blocks, stack.layers):
            load(block, layer)
        ours.final_norm.load_state_dict(stack.norm.state_dict())
    return encoder, decoder
