"""Multi-head attention, measured: what h heads cost, and what one layer of a real model does.

- :func:`attention_cost`: parameters and FLOPs (counted by PyTorch's ``FlopCounterMode``) of
  one multi-head attention layer with h heads of width d_model / h.
- :func:`capture_layer`: the input and output of one attention layer of a loaded model, and
  its projection modules, to check a written-out multi-head attention against the model.
- :func:`ablate_heads`: silence some heads of one layer and measure how much the layer's
  attention output (after W_O), or its whole block's output, changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from attnlab import validate
from attnlab.errors import InputError
from attnlab.extraction import attention_projections, check_layer_head, clean_text, encode
from attnlab.models import LoadedModel, as_loaded

if TYPE_CHECKING:
    import torch

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class AttentionCost:
    """What one multi-head attention layer costs on one sequence of ``length`` tokens."""

    d_model: int
    n_heads: int
    length: int
    parameters: int  # W_Q, W_K, W_V, W_O and their biases
    projection_flops: int  # the four projections, counted by FlopCounterMode
    attention_flops: int  # Q Kᵀ and weights @ V, all heads together
    weights_held: int  # attention weights computed: n_heads × length × length

    @property
    def head_dim(self) -> int:
        """The width d_model / n_heads of each head."""
        return self.d_model // self.n_heads

    @property
    def flops(self) -> int:
        """All counted FLOPs: projections and attention."""
        return self.projection_flops + self.attention_flops


def count_parameters(module) -> int:
    """The number of learned numbers in a torch module (every parameter's entries added up)."""
    from torch import nn

    if not isinstance(module, nn.Module):
        raise InputError(f"count_parameters needs a torch module such as nn.Linear(4, 4), not {type(module).__name__}.")
    return sum(p.numel() for p in module.parameters())


def attention_cost(d_model: int, n_heads: int, length: int = 128, bias: bool = True) -> AttentionCost:
    """Count the parameters of ``MultiHeadAttention(d_model, n_heads)`` and measure its FLOPs on one sequence.

    FLOPs are those of the matrix products (2 per multiply-add), as ``torch.utils.flop_counter``
    counts them; the softmax and the scaling are a few operations per weight and are not counted.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from attnlab.blocks import MultiHeadAttention

    length = validate.whole_number(length, "length", minimum=1)
    layer = MultiHeadAttention(d_model, n_heads, bias=bias, fused=False)  # checks d_model and n_heads
    x = torch.randn(1, length, layer.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        _, weights = layer(x, need_weights=True)  # written-out path: every product is a counted matmul
    counts = counter.get_flop_counts()
    name = type(layer).__name__
    projection = sum(sum(counts.get(f"{name}.{part}", {}).values()) for part in PROJECTIONS)
    return AttentionCost(layer.d_model, layer.n_heads, length, count_parameters(layer), int(projection),
                         int(counter.get_total_flops() - projection), int(weights[0].numel()))


# ------------------------------------------------------------------ one layer of a real model

_OUT_PROJECTIONS = ("attention.output.dense", "attention.out_lin", "self_attn.out_proj")


def _out_projections(model) -> list:
    """Each layer's output projection W_O (BERT-, DistilBERT- and BART-style names)."""
    return [module for name, module in model.named_modules() if name.endswith(_OUT_PROJECTIONS)]


def _layer_modules(lm: LoadedModel, layer: int) -> tuple:
    check_layer_head(layer, 0, lm.n_layers, lm.n_heads, lm.name)
    projections = attention_projections(lm.model)
    outs = _out_projections(lm.model)
    if len(projections) != lm.n_layers or len(outs) != lm.n_layers or projections[layer][0] != "separate":
        raise InputError(f"This works on BERT-style models with separate query, key, value and output "
                         f"projections, such as MiniLM; {lm.name} is built differently.")
    return (*projections[layer][1], outs[layer])


@dataclass(frozen=True)
class LayerCapture:
    """One attention layer of a model at work: what it read, what it wrote, and its four projections."""

    tokens: tuple[str, ...]
    n_heads: int
    x: torch.Tensor  # (1, T, C): the input of the layer's query, key and value projections
    attended: torch.Tensor  # (1, T, C): the output of W_O (before dropout, residual and LayerNorm)
    q_proj: torch.nn.Module
    k_proj: torch.nn.Module
    v_proj: torch.nn.Module
    out_proj: torch.nn.Module


def capture_layer(text: str, model: str | LoadedModel, layer: int) -> LayerCapture:
    """Run ``text`` through ``model`` and keep what attention layer ``layer`` reads and writes."""
    import torch

    lm = as_loaded(model)
    q_proj, k_proj, v_proj, out_proj = _layer_modules(lm, layer)
    text, notes = clean_text(text)
    encoding, tokens = encode(text, lm, notes)
    captured = {}
    hooks = [q_proj.register_forward_pre_hook(lambda _m, args: captured.setdefault("x", args[0].detach())),
             out_proj.register_forward_hook(lambda _m, _in, out: captured.setdefault("out", out.detach()))]
    try:
        with torch.no_grad():
            lm.model(**encoding.to(lm.device))
    finally:
        for hook in hooks:
            hook.remove()
    return LayerCapture(tuple(tokens), lm.n_heads, captured["x"], captured["out"], q_proj, k_proj, v_proj, out_proj)


_UNTOUCHED: OrderedDict = OrderedDict()  # (model, device, text, layer) → (W_O output, block output), no ablation
_LAST_ABLATED: dict = {}  # the last ablated run, so that asking for the other place does not run the model again
ABLATION_PLACES = ("attention", "block")


def _attention_and_block(lm: LoadedModel, encoding, layer: int, out_proj, hook=None) -> tuple:
    """Run the model once; return layer ``layer``'s W_O output and its whole block's output."""
    captured = {}
    keep = out_proj.register_forward_hook(lambda _m, _in, out: captured.setdefault("attended", out.detach()))
    silence = out_proj.register_forward_pre_hook(hook) if hook is not None else None
    try:
        hidden = lm.model(**encoding, output_hidden_states=True).hidden_states
    finally:
        keep.remove()
        if silence is not None:
            silence.remove()
    return captured["attended"], hidden[layer + 1]


def silencer(heads: list[int], head_dim: int):
    """A forward pre-hook for W_O that sets these heads' slices of the merged heads to 0."""

    def silence(_module, args):
        merged = args[0].clone()  # (B, T, C): the heads side by side, before W_O
        for head in heads:
            merged[..., head * head_dim:(head + 1) * head_dim] = 0
        return (merged, *args[1:])

    return silence


def ablate_heads(text: str, model: str | LoadedModel, layer: int, heads: Iterable[int],
                 where: str = "attention") -> float:
    """Silence ``heads`` of ``layer`` (their slices of the merged heads set to 0 before W_O) and return
    the relative change ‖after − before‖ / ‖before‖ over all tokens.

    ``where="attention"`` (default) compares the attention layer's own output, after W_O;
    ``where="block"`` compares the whole encoder block's output (after the residual connection,
    LayerNorms and feed-forward network), where the change is diluted.
    """
    import torch

    if where not in ABLATION_PLACES:
        raise InputError(f"where={where!r}: measure the change at 'attention' (the output of W_O) or at 'block' "
                         "(the output of the whole encoder block).")
    lm = as_loaded(model)
    *_, out_proj = _layer_modules(lm, layer)
    if isinstance(heads, (int, np.integer)):
        heads = [heads]
    heads = list(heads)
    for head in heads:
        check_layer_head(layer, head, lm.n_layers, lm.n_heads, lm.name)
    text, notes = clean_text(text)
    encoding, _ = encode(text, lm, notes)
    encoding = encoding.to(lm.device)
    silence = silencer(heads, out_proj.in_features // lm.n_heads)

    key = (lm.name, str(lm.device), text, layer)
    with torch.no_grad():
        if key not in _UNTOUCHED:  # the model's own outputs, once per text and layer
            _UNTOUCHED[key] = _attention_and_block(lm, encoding, layer, out_proj)
            if len(_UNTOUCHED) > 8:
                _UNTOUCHED.popitem(last=False)
        ablated = (key, tuple(sorted(set(heads))))
        if ablated not in _LAST_ABLATED:
            _LAST_ABLATED.clear()
            _LAST_ABLATED[ablated] = _attention_and_block(lm, encoding, layer, out_proj, silence)
        before = _UNTOUCHED[key][ABLATION_PLACES.index(where)]
        after = _LAST_ABLATED[ablated][ABLATION_PLACES.index(where)]
    return float(torch.linalg.norm(after - before) / torch.linalg.norm(before))
