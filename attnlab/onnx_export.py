"""The course's models as ONNX files that a browser can run, with the attention maps as an output.

The site's in-browser explorers (issue 15) run a model with onnxruntime-web: no kernel, no
server. This module writes such a file for any model ``attnlab.models.load`` gives, and measures
how far its attention maps are from PyTorch's on the same text.

Weights are stored in float16 and turned back into float32 as the model starts: half the bytes
of float32, while every product still runs in float32. Measured on MiniLM, 8-bit weights move
attention weights by 0.015–0.8 (far past the 0.01 the explorers promise); float16 storage by
about 0.001 (``tests/test_onnx_export.py``).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from attnlab.errors import InputError

SMALLEST_HALVED = 1024  # smaller tensors (biases, norms) stay float32: halving them saves nothing worth a Cast


class AttentionOutputs(nn.Module):
    """A transformers model whose outputs are what the explorers draw: every attention map (and, for a GPT, the logits)."""

    def __init__(self, model: nn.Module, causal: bool):
        super().__init__()
        self.model = model
        self.causal = causal

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(B, T) ids and mask → attentions (B, layers, heads, T, T) [, logits (B, T, vocab)]."""
        extra = {"use_cache": False} if self.causal else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True, **extra)
        maps = torch.stack(out.attentions, dim=1)  # (B, L, H, T, T)
        if not self.causal:
            return maps
        logits = getattr(out, "logits", None)
        if logits is None:  # a GPT-2 body without its head: the head is the token embeddings, tied
            logits = out.last_hidden_state @ self.model.get_input_embeddings().weight.T  # (B, T, vocab)
        return maps, logits


def output_names(causal: bool) -> list[str]:
    """The names of the ONNX file's outputs."""
    return ["attentions", "logits"] if causal else ["attentions"]


def export(lm, path: str | Path, half_weights: bool = True) -> Path:
    """Write ``lm`` (from ``attnlab.models.load``) as an ONNX file whose outputs are its attention maps."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = AttentionOutputs(lm.model, lm.causal).eval().cpu()
    example = lm.tokenizer(["Attention is all you need."], return_tensors="pt")
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "attentions": {0: "batch", 3: "tokens", 4: "keys"}}
    if lm.causal:
        dynamic["logits"] = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes about Python branches on shapes that do not vary here
        torch.onnx.export(model, (example["input_ids"], example["attention_mask"]), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=output_names(lm.causal),
                          dynamic_axes=dynamic, opset_version=17, dynamo=False)
    if half_weights:
        onnx.save(weights_in_half(onnx.load(str(path))), str(path))
    lm.model.to(lm.device)  # AttentionOutputs moved it to the CPU for tracing
    return path


class CachedStep(nn.Module):
    """A course GPT (:class:`attnlab.gpt.GPT`) that reads new tokens after a cache of earlier keys and values.

    Writing text, each step then costs one token's work instead of the whole window's. Positions
    are absolute, so the cache holds only while the window has not slid: from then on the window
    is read afresh each step, with an empty cache, exactly as ``GPT.generate`` reads it.
    """

    def __init__(self, gpt: nn.Module):
        super().__init__()
        self.gpt = gpt

    def forward(self, input_ids: torch.Tensor, past_keys: torch.Tensor, past_values: torch.Tensor):
        """input_ids (1, t) after P cached positions, past_* (layers, 1, heads, P, head size) →
        logits of the last position (1, vocab) and the cache grown to P + t positions."""
        gpt = self.gpt
        past, length = past_keys.size(3), input_ids.size(1)
        positions = torch.arange(past, past + length)  # (t,)
        x = gpt.token_embedding(input_ids) + gpt.position_embedding(positions)  # (1, t, C)
        hidden = torch.arange(past + length)[None, :] > positions[:, None]  # (t, P + t): keys after each query
        keys, values = [], []
        for layer, block in enumerate(gpt.blocks):  # pre-norm blocks, as GPT builds them
            attention, h = block.attention, block.norm1(x)
            if layer == len(gpt.blocks) - 1:  # only the last position's output is read: one query, not t
                x, hidden = x[:, -1:], hidden[-1:]
            q = attention.split_heads(attention.q_proj(h[:, -x.size(1):]))  # (1, H, t, hd); t = 1 in the last layer
            k = torch.cat((past_keys[layer], attention.split_heads(attention.k_proj(h))), dim=2)  # (1, H, P + t, hd)
            v = torch.cat((past_values[layer], attention.split_heads(attention.v_proj(h))), dim=2)
            scores = q @ k.transpose(-2, -1) / math.sqrt(attention.head_dim)  # (1, H, t, P + t)
            weights = torch.softmax(scores.masked_fill(hidden, float("-inf")), dim=-1)
            x = x + attention.out_proj(attention.merge_heads(weights @ v))
            x = x + block.feed_forward(block.norm2(x))
            keys.append(k)
            values.append(v)
        logits = gpt.lm_head(gpt.final_norm(x[:, -1]))  # (1, vocab): only the last position predicts
        return logits, torch.stack(keys), torch.stack(values)


def empty_cache(gpt: nn.Module) -> torch.Tensor:
    """A cache of no positions for :class:`CachedStep`: (layers, 1, heads, 0, head size)."""
    config = gpt.config
    return torch.zeros(config.n_layer, 1, config.n_head, 0, config.n_embd // config.n_head)


def export_step(gpt: nn.Module, path: str | Path, half_weights: bool = True) -> Path:
    """Write a course GPT as an ONNX file of :class:`CachedStep`, for writing text in the browser."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step = CachedStep(gpt.eval().cpu())
    ids = torch.tensor([[1, 2, 3]])
    past = empty_cache(gpt)
    past = torch.cat((past, past[:, :, :, :0].new_zeros(*past.shape[:3], 2, past.size(-1))), dim=3)  # 2 positions
    cache_axes = {3: "positions"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes about shapes read as Python numbers
        torch.onnx.export(step, (ids, past, past), str(path), input_names=["input_ids", "past_keys", "past_values"],
                          output_names=["logits", "keys", "values"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {1: "tokens"}, "past_keys": cache_axes, "past_values": cache_axes,
                                        "keys": {3: "all"}, "values": {3: "all"}})
    if half_weights:
        onnx.save(weights_in_half(onnx.load(str(path))), str(path))
    return path


def weights_in_half(proto):
    """The same graph with its large float32 weights stored as float16, each cast back to float32 on load."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    casts, halves = [], []
    for tensor in list(graph.initializer):
        values = numpy_helper.to_array(tensor)
        if values.dtype != np.float32 or values.size < SMALLEST_HALVED:
            continue
        halves.append(numpy_helper.from_array(values.astype(np.float16), tensor.name + ".fp16"))
        casts.append(helper.make_node("Cast", [tensor.name + ".fp16"], [tensor.name], to=TensorProto.FLOAT,
                                      name=tensor.name + ".to_float32"))
        graph.initializer.remove(tensor)
    graph.initializer.extend(halves)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # the casts first: every later node reads their outputs
    return proto


def onnx_attentions(path: str | Path, ids: list[int]) -> np.ndarray:
    """Attention maps (layers, heads, T, T) of one sequence of token ids, from the ONNX file run by onnxruntime."""
    import onnxruntime

    if not Path(path).is_file():
        raise InputError(f"no ONNX file at {path}: write one first with attnlab.onnx_export.export(lm, path).")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_ids = np.asarray([ids], dtype=np.int64)  # (1, T)
    return session.run(["attentions"], {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)})[0][0]


def max_attention_difference(path: str | Path, lm, texts: list[str]) -> float:
    """The largest |ONNX − PyTorch| over every attention weight of every text, on the same token ids."""
    from attnlab.extraction import attend

    worst = 0.0
    for text in texts:
        record = attend(text, lm)  # PyTorch: the ids and maps (layers, heads, T, T) the explorers show
        theirs = onnx_attentions(path, list(record.ids))
        if theirs.shape != record.attentions.shape:
            raise InputError(f"the ONNX file gives maps of shape {theirs.shape} for {text!r}, "
                             f"PyTorch {record.attentions.shape}.")
        worst = max(worst, float(np.abs(theirs - record.attentions).max()))
    return worst
