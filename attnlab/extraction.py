"""Attention out of a real model: ``attend(text, model)`` and the internals of one head.

The record holds every layer's and head's attention as a compact float32 array
(layers, heads, T, T). Records are cached by (model, text), so redrawing a figure never
re-runs the model.
"""

from __future__ import annotations

import math
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from attnlab.errors import InputError
from attnlab.models import LoadedModel, as_loaded

_CACHE: OrderedDict[tuple, "AttentionRecord"] = OrderedDict()
_CACHE_SIZE = 64


@dataclass(frozen=True)
class AttentionRecord:
    """Tokens and all attention maps of one text in one model."""

    model_name: str
    text: str
    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    attentions: np.ndarray  # (layers, heads, T, T), float32, read-only; each row sums to 1
    special: tuple[bool, ...]  # True for [CLS], [SEP], <|endoftext|>, ...
    causal: bool
    notes: tuple[str, ...] = ()  # what was changed about the input, in plain words
    words: tuple[tuple[int, ...], ...] = ()  # for a word-level record: the token positions of each word

    @property
    def n_layers(self) -> int:
        return self.attentions.shape[0]

    @property
    def n_heads(self) -> int:
        return self.attentions.shape[1]

    def head(self, layer: int, head: int) -> np.ndarray:
        """The (T, T) attention of one head; rows are queries, columns keys."""
        check_layer_head(layer, head, self.n_layers, self.n_heads, self.model_name)
        return self.attentions[layer, head]


def check_layer_head(layer: int, head: int, n_layers: int, n_heads: int, model_name: str) -> None:
    """Raise a friendly InputError when layer or head is out of range."""
    for what, value, count in (("layer", layer, n_layers), ("head", head, n_heads)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < count:
            raise InputError(f"{what} {value!r} does not exist: {model_name} has {what}s 0–{count - 1} ({count} in all).")


def clean_text(text: object) -> tuple[str, list[str]]:
    """Text ready for a tokenizer, and notes on what was changed; empty text is an InputError."""
    if not isinstance(text, str):
        raise InputError(f"The text must be a string of characters, not {type(text).__name__}.")
    notes = []
    # Control characters (other than tab and newline) are invisible and mean nothing to a model.
    controls = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n"]
    if controls:
        text = "".join(" " if c in controls else c for c in text)
        notes.append(f"{len(controls)} invisible control character(s) were replaced by spaces.")
    if not text.strip():
        raise InputError("Type a sentence first: the text is empty.")
    # Zero-width spaces, joiners and other format characters (Unicode category Cf) show nothing.
    if all(c.isspace() or unicodedata.category(c) == "Cf" for c in text):
        raise InputError("Type a sentence first: the text holds only invisible characters "
                         "(zero-width spaces or joiners), which show nothing and mean nothing to a model.")
    return text, notes


def encode(text: str, lm: LoadedModel, notes: list[str]):
    """Tokenize ``text`` for ``lm``, cut to the model's limit (a note says so); → (encoding, tokens)."""
    tokenizer = lm.tokenizer
    full_length = len(tokenizer(text)["input_ids"])
    encoding = tokenizer(text, return_tensors="pt", truncation=True, max_length=lm.max_tokens)
    length = encoding["input_ids"].shape[1]
    if full_length > length:
        notes.append(f"The text was cut to its first {length} tokens (of {full_length}): "
                     f"{lm.name} reads at most {lm.max_tokens}.")
    unknown = tokenizer.unk_token
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][0].tolist())
    special = set(tokenizer.all_special_tokens) - {unknown}  # an unknown piece is still something read
    if all(token in special for token in tokens):
        raise InputError(f"Type a sentence first: {lm.name}'s tokenizer finds nothing to read in this text.")
    if unknown and unknown in tokens:
        notes.append(f"{tokens.count(unknown)} piece(s) became {unknown}: the vocabulary has no piece for them "
                     "(emoji, rare scripts and words of over 100 letters often do this).")
    return encoding, tokens


def attend(text: str, model: str | LoadedModel = "minilm", merge_words: bool = False) -> AttentionRecord:
    """Run ``text`` through ``model`` and return every attention map (cached by model and text)."""
    import torch

    lm = as_loaded(model)
    text, notes = clean_text(text)
    if not isinstance(merge_words, bool):
        raise InputError(f"merge_words must be True or False, not {merge_words!r}.")
    key = (lm.name, lm.device, text, merge_words)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    encoding, tokens = encode(text, lm, notes)
    with torch.no_grad():
        output = lm.model(**encoding.to(lm.device), output_attentions=True)
    maps = torch.stack(output.attentions)[:, 0].float().cpu().numpy()  # (L, H, T, T)
    maps.setflags(write=False)
    special_ids = set(lm.tokenizer.all_special_ids)
    ids = tuple(encoding["input_ids"][0].tolist())
    record = AttentionRecord(
        model_name=lm.name, text=text, tokens=tuple(tokens), ids=ids, attentions=maps,
        special=tuple(i in special_ids for i in ids), causal=lm.causal, notes=tuple(notes),
    )
    if merge_words:
        record = merge_into_words(record, encoding.word_ids(0), lm.tokenizer)
    _CACHE[key] = record
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return record


def merge_into_words(record: AttentionRecord, word_ids: list[int | None], tokenizer) -> AttentionRecord:
    """Combine the pieces of each word: attention TO a word is the sum over its pieces,
    attention FROM a word is the mean of its pieces' rows. Rows still sum to 1."""
    groups: list[list[int]] = []
    for position, word in enumerate(word_ids):
        if groups and word is not None and word_ids[groups[-1][0]] == word:
            groups[-1].append(position)
        else:
            groups.append([position])
    membership = np.zeros((len(word_ids), len(groups)), dtype=np.float32)  # (T, W)
    for index, group in enumerate(groups):
        membership[group, index] = 1.0
    summed = record.attentions @ membership  # (L, H, T, W): columns of one word added
    merged = np.einsum("tw,lhtv->lhwv", membership, summed) / membership.sum(axis=0)[:, None]  # mean of rows
    merged = merged.astype(np.float32)
    merged.setflags(write=False)
    words = [tokenizer.convert_tokens_to_string([record.tokens[p] for p in group]).strip() or record.tokens[group[0]]
             for group in groups]
    return replace(
        record, tokens=tuple(words), ids=tuple(record.ids[g[0]] for g in groups), attentions=merged,
        special=tuple(all(record.special[p] for p in g) for g in groups), words=tuple(tuple(g) for g in groups),
    )


# ----------------------------------------------------------- one head, step by step


@dataclass(frozen=True)
class HeadInternals:
    """The real queries, keys and values of one head, and each step from them to its output."""

    tokens: tuple[str, ...]
    layer: int
    head: int
    q: np.ndarray  # (T, d_head)
    k: np.ndarray  # (T, d_head)
    v: np.ndarray  # (T, d_head)
    scores: np.ndarray  # (T, T): q · k, before scaling
    scaled: np.ndarray  # (T, T): q · k / √d_head, before the softmax (masked cells are -inf)
    weights: np.ndarray  # (T, T): the model's own attention for this head
    output: np.ndarray  # (T, d_head): weights @ v


_PROJECTIONS = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"), ("q_proj", "k_proj", "v_proj"))


def attention_projections(model) -> list:
    """For each layer, a function from captured outputs to (q, k, v), and the modules to hook."""
    layers = []
    for _, module in model.named_modules():
        children = dict(module.named_children())
        for names in _PROJECTIONS:
            if all(n in children for n in names):
                layers.append(("separate", [children[n] for n in names]))
                break
        else:
            if "c_attn" in children:  # GPT-2: one fused projection to q, k and v
                layers.append(("fused", [children["c_attn"]]))
    return layers


def head_internals(text: str, model: str | LoadedModel, layer: int, head: int) -> HeadInternals:
    """Capture the real Q, K, V of one layer and head while the model reads ``text``."""
    import torch

    lm = as_loaded(model)
    check_layer_head(layer, head, lm.n_layers, lm.n_heads, lm.name)
    record = attend(text, lm)
    projections = attention_projections(lm.model)
    if len(projections) != lm.n_layers:
        raise InputError(f"The step-by-step view supports BERT- and GPT-2-style models; {lm.name} is built differently.")
    kind, modules = projections[layer]
    captured: list = []
    hooks = [m.register_forward_hook(lambda _m, _in, out: captured.append(out)) for m in modules]
    try:
        text, notes = clean_text(text)
        encoding, _ = encode(text, lm, notes)
        with torch.no_grad():
            lm.model(**encoding.to(lm.device))
    finally:
        for hook in hooks:
            hook.remove()
    q, k, v = captured if kind == "separate" else captured[0].split(captured[0].shape[-1] // 3, dim=-1)
    head_dim = q.shape[-1] // lm.n_heads
    cut = slice(head * head_dim, (head + 1) * head_dim)
    q, k, v = (t[0, :, cut].float().cpu().numpy() for t in (q, k, v))  # (T, d_head) each
    scores = q @ k.T
    scaled = scores / math.sqrt(head_dim)
    if lm.causal:
        scaled = np.where(np.tri(len(scaled), dtype=bool), scaled, -np.inf)
    weights = record.head(layer, head)
    return HeadInternals(record.tokens, layer, head, q, k, v, scores, scaled, weights, weights @ v)
