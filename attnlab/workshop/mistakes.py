"""Common wrong answers to every lab exercise, and what the checker says to each (for instructors).

Each :class:`Mistake` is the small wrong function a learner really writes; :func:`messages` runs them
through the checker and returns its verbatim ✗ message. Nothing here loads a model: the checkers build
their own tiny ones, so the whole catalog runs in seconds.
"""

from __future__ import annotations

import contextlib
import io
import math
import string
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from attnlab import checkers
from attnlab.attention import scaled_dot_product_attention_np, softmax


@dataclass(frozen=True)
class Mistake:
    """What the learner wrote, in words, and the wrong function itself."""

    what: str
    answer: Callable


# ---------------------------------------------------------------- chapters 1–4 (NumPy)


def rnn_forgets_state(x, w_x, w_h):
    return torch.tanh(x @ w_x)  # every token on its own: h_{t-1} W_h left out


def rnn_starts_at_ones(x, w_x, w_h):
    h, states = torch.ones(w_h.shape[0], dtype=x.dtype), []
    for x_t in x:
        h = torch.tanh(x_t @ w_x + h @ w_h)
        states.append(h)
    return torch.stack(states)


def rnn_last_state_only(x, w_x, w_h):
    h = torch.zeros(w_h.shape[0], dtype=x.dtype)
    for x_t in x:
        h = torch.tanh(x_t @ w_x + h @ w_h)
    return h


def attention_unscaled(q, k, v, mask=None):
    weights = softmax(q @ np.swapaxes(k, -1, -2))
    return weights @ v, weights


def attention_over_queries(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(scores - scores.max(axis=-2, keepdims=True))
    weights = e / e.sum(axis=-2, keepdims=True)
    return weights @ v, weights


def attention_mask_after_softmax(q, k, v, mask=None):
    _, weights = scaled_dot_product_attention_np(q, k, v)
    if mask is not None:
        weights = np.where(mask, weights, 0.0)
    return weights @ v, weights


def attention_unstable(q, k, v, mask=None):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    e = np.exp(scores)
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ v, weights


def attention_k_dot_t(q, k, v, mask=None):
    scores = q @ k.T / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores)
    return weights @ v, weights


def _attention_scaled_by(scale: Callable, mask_by_multiplying=False, inverted_mask=False):
    """Attention whose scores are divided by ``scale(q, v)`` and whose mask is applied as given."""
    def fn(q, k, v, mask=None):
        scores = q @ np.swapaxes(k, -1, -2) / scale(q, v)
        if mask is not None and mask_by_multiplying:
            scores = mask * scores
        elif mask is not None:
            scores = np.where(mask, -np.inf, scores) if inverted_mask else np.where(mask, scores, -np.inf)
        weights = softmax(scores)
        return weights @ v, weights
    return fn


def _root_d_k(q, v):
    return np.sqrt(q.shape[-1])


def softmax_sum_no_keepdims(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1)


def softmax_max_no_keepdims(x):
    e = np.exp(x - x.max(axis=-1))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_global_max(x):
    e = np.exp(x - x.max())
    return e / e.sum(axis=-1, keepdims=True)


def attention_output_only(q, k, v, mask=None):
    return scaled_dot_product_attention_np(q, k, v, mask)[0]


def _numpy_heads(merge_badly=False, skip_output=False, single_head=False):
    def fn(x, w_q, w_k, w_v, w_o, n_heads):
        n_heads = 1 if single_head else n_heads
        length, d = x.shape
        split = lambda m: m.reshape(length, n_heads, d // n_heads).transpose(1, 0, 2)  # noqa: E731
        out, _ = scaled_dot_product_attention_np(split(x @ w_q), split(x @ w_k), split(x @ w_v))
        merged = out.reshape(length, d) if merge_badly else out.transpose(1, 0, 2).reshape(length, d)
        return merged if skip_output else merged @ w_o
    return fn


def sin_cos_swapped(n, d):
    table = checkers.sinusoidal_encoding(n, d)
    table[:, 0::2], table[:, 1::2] = table[:, 1::2].copy(), table[:, 0::2].copy()
    return table


def frequencies_over_i(n, d):
    pos, i = np.arange(n)[:, None], np.arange(d // 2)[None, :]
    table = np.zeros((n, d))
    table[:, 0::2], table[:, 1::2] = np.sin(pos / 10000 ** (i / d)), np.cos(pos / 10000 ** (i / d))
    return table


def positions_from_one(n, d):
    return checkers.sinusoidal_encoding(n + 1, d)[1:]


def sines_then_cosines(n, d):
    angles = np.arange(n)[:, None] / 10000 ** (np.arange(0, d, 2)[None, :] / d)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


# ---------------------------------------------------------------- chapter 5 (PyTorch heads)


def split_heads(x, n_heads):
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def merge_with_view(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).view(B, T, H * D)


def _reshape_split(x, n_heads):
    return x.reshape(x.shape[0], n_heads, x.shape[1], -1)


def _reshape_merge(x):
    return x.reshape(x.shape[0], x.shape[2], -1)


def torch_heads(split=split_heads, merge=merge_heads, scale=None, project=True, softmax_dim=-1, transposed=()):
    def fn(x, w_q, w_k, w_v, w_o, n_heads):
        w_q, w_k, w_v, w_o = (w.T if name in transposed else w
                              for w, name in zip((w_q, w_k, w_v, w_o), ("w_q", "w_k", "w_v", "w_o")))
        q, k, v = (split(x @ w, n_heads) for w in (w_q, w_k, w_v))
        d = q.shape[-1] if scale is None else scale(x, q)
        merged = merge(torch.softmax(q @ k.transpose(-2, -1) / d ** 0.5, dim=softmax_dim) @ v)
        return merged @ w_o if project else merged
    return fn


# ---------------------------------------------------------------- chapter 6 (block)


def _layer_norm(dim=-1, unbiased=False, with_eps=True, affine=True):
    def fn(x, gain, bias, eps=1e-5):
        mean, var = x.mean(dim=dim, keepdim=True), x.var(dim=dim, keepdim=True, unbiased=unbiased)
        normalised = (x - mean) / torch.sqrt(var + (eps if with_eps else 0.0))
        return gain * normalised + bias if affine else normalised
    return fn


def layer_norm_no_keepdim(x, gain, bias, eps=1e-5):
    mean, var = x.mean(dim=-1), x.var(dim=-1, unbiased=False)
    return gain * (x - mean) / torch.sqrt(var + eps) + bias


def layer_norm_eps_outside(x, gain, bias, eps=1e-5):
    return gain * (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False).sqrt() + eps) + bias


def rms_norm(x, gain, bias, eps=1e-5):
    return gain * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) + bias


def right_block(x, attention, ffn, norm1, norm2, norm_first):
    if norm_first:
        x = x + attention(norm1(x))
        return x + ffn(norm2(x))
    x = norm1(x + attention(x))
    return norm2(x + ffn(x))


def block_no_residual(x, a, f, n1, n2, norm_first):
    return f(n2(a(n1(x)))) if norm_first else n2(f(n1(a(x))))


def block_pre_post_swapped(x, a, f, n1, n2, norm_first):
    return right_block(x, a, f, n1, n2, not norm_first)


def block_normalised_stream(x, a, f, n1, n2, norm_first):
    if not norm_first:
        return right_block(x, a, f, n1, n2, False)
    x = n1(x)
    x = x + a(x)
    x = n2(x)
    return x + f(x)


def block_norms_swapped(x, a, f, n1, n2, norm_first):
    return right_block(x, a, f, n1, n2, norm_first) if norm_first else right_block(x, a, f, n2, n1, False)


# ---------------------------------------------------------------- chapter 7 (masks, cross-attention)


def _padding(lengths, max_len):
    return (np.arange(max_len)[None, :] < np.array(lengths)[:, None])[:, None, None, :]


def cross_swapped_roles(x, memory, w_q, w_k, w_v):
    return scaled_dot_product_attention_np(memory @ w_q, x @ w_k, x @ w_v)


def cross_with_causal_mask(x, memory, w_q, w_k, w_v):
    mask = np.tril(np.ones((len(x), len(memory)), dtype=bool))
    return scaled_dot_product_attention_np(x @ w_q, memory @ w_k, memory @ w_v, mask=mask)


def cross_unscaled(x, memory, w_q, w_k, w_v):
    weights = softmax((x @ w_q) @ (memory @ w_k).T)
    return weights @ (memory @ w_v), weights


def cross_unprojected_values(x, memory, w_q, w_k, w_v):
    _, weights = scaled_dot_product_attention_np(x @ w_q, memory @ w_k, memory @ w_v)
    return weights @ memory, weights


def cross_self_attention(x, memory, w_q, w_k, w_v):
    return scaled_dot_product_attention_np(x @ w_q, x @ w_k, x @ w_v)


# ---------------------------------------------------------------- chapter 8 (training)


def _training_step(zero=True, clip="norm", clip_after=False):
    def fn(model, batch, optimizer, max_norm):
        from attnlab.seq2seq import sequence_loss

        loss = sequence_loss(model, batch)
        if zero:
            optimizer.zero_grad()
        loss.backward()
        if clip == "norm" and not clip_after:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), max_norm)
        optimizer.step()
        if clip_after:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        return loss.item()
    return fn


# ---------------------------------------------------------------- chapter 9 (sampling, generation)


def right_sampling(logits, temperature=1.0, top_k=None):
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.size(-1)).float()
    logits = logits / temperature
    if top_k is not None:
        logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[:, -1:], float("-inf"))
    return torch.softmax(logits, dim=-1)


def sampling_divides_probabilities(logits, temperature=1.0, top_k=None):
    return right_sampling(logits, 0) if temperature == 0 else torch.softmax(logits, -1) / temperature


def sampling_strictly_greater(logits, temperature=1.0, top_k=None):
    if temperature == 0:
        return right_sampling(logits, 0)
    logits = logits / temperature
    if top_k is not None:
        logits = logits.masked_fill(logits <= torch.topk(logits, top_k).values[:, -1:], float("-inf"))
    return torch.softmax(logits, -1)


def sampling_not_renormalised(logits, temperature=1.0, top_k=None):
    if temperature == 0:
        return right_sampling(logits, 0)
    probs = torch.softmax(logits / temperature, -1)
    if top_k is not None:
        probs = probs.masked_fill(probs < torch.topk(probs, top_k).values[:, -1:], 0.0)
    return probs


def sampling_no_greedy_case(logits, temperature=1.0, top_k=None):
    logits = logits / temperature
    if top_k is not None:
        logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[:, -1:], float("-inf"))
    return torch.softmax(logits, dim=-1)


def _generate(context, position=-1, sample=True, prompt=True):
    """A generation loop; ``context(idx, block)`` picks what the model reads."""
    def fn(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        start = idx
        with torch.no_grad():
            for _ in range(max_new_tokens):
                logits = model(context(idx, model.config.block_size)).logits[:, position, :]
                probs = right_sampling(logits, temperature if sample else 0.0, top_k)
                idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
        return idx if prompt else idx[:, start.size(1):]
    return fn


_LAST = lambda idx, block: idx[:, -block:]  # noqa: E731


# ---------------------------------------------------------------- chapter 10 (pretrained attention)


def _punctuation(is_punct: Callable[[str], bool], reduce_keys="sum", reduce_queries="mean", as_queries=False):
    def fn(attentions, tokens):
        keys = np.array([is_punct(t) for t in tokens])
        picked = attentions[..., keys, :] if as_queries else attentions[..., keys]
        per_query = getattr(picked, reduce_keys)(axis=-2 if as_queries else -1)
        return getattr(per_query, reduce_queries)(axis=-1)
    return fn


def _no_letters(token):
    return not any(c.isalnum() for c in token)


def _rollout(renormalise=True, reverse=False, elementwise=False, fixed_residual=None):
    def fn(attentions, residual=0.5):
        share = residual if fixed_residual is None else fixed_residual
        length = attentions.shape[-1]
        result = None
        for layer in attentions.mean(axis=1):
            mixed = layer + np.eye(length) if not renormalise else share * np.eye(length) + (1 - share) * layer
            if result is None:
                result = mixed
            elif elementwise:
                result = mixed * result
            else:
                result = result @ mixed if reverse else mixed @ result
        return result
    return fn


# ---------------------------------------------------------------- chapter 11 (cost)


def _band(size, window):
    i, j = np.arange(size)[:, None], np.arange(size)[None, :]
    return (j <= i) & (j > i - window)


def _cache_step(**mistake):
    def fn(model, ids, cache):
        from attnlab.cost import _cache_step as step

        return step(model, ids, cache, **mistake)
    return fn


def cache_returns_only_new(model, ids, cache):
    from attnlab.cost import cache_step

    logits, grown = cache_step(model, ids, cache)
    return logits, [(k[:, :, -ids.size(1):], v[:, :, -ids.size(1):]) for k, v in grown]


# ---------------------------------------------------------------- chapter 12 (tasks)


def embedding_cls_only(hidden, mask):
    return F.normalize(hidden[:, 0], dim=-1)


def embedding_pads_included(hidden, mask):
    return F.normalize(hidden.mean(dim=1), dim=-1)


def embedding_not_normalised(hidden, mask):
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / weights.sum(1)


def embedding_inverted_mask(hidden, mask):
    weights = 1 - mask.unsqueeze(-1).float()
    return F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)


def _cosine(query, documents):
    return documents @ query / (np.linalg.norm(documents, axis=1) * np.linalg.norm(query))


def _recall(hit: Callable, k_shift=0, reduce=np.mean):
    def fn(ranked, relevant, k):
        return float(reduce([hit(r[:k + k_shift], rel, k) for r, rel in zip(ranked, relevant)]))
    return fn


def confusion_transposed(true, predicted, n_classes):
    table = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(true, predicted):
        table[p, t] += 1
    return table


def confusion_fancy_index(true, predicted, n_classes):
    table = np.zeros((n_classes, n_classes), dtype=int)
    table[true, predicted] += 1
    return table


def _gpt2(output_layer=False, positions=True, rule_of_thumb=False):
    def fn(n_layer, n_embd, vocab_size, n_positions):
        c = n_embd
        if rule_of_thumb:
            return 12 * n_layer * c * c + vocab_size * c
        total = n_layer * (12 * c * c + 13 * c) + vocab_size * c + 2 * c
        return total + (n_positions * c if positions else 0) + (vocab_size * c if output_layer else 0)
    return fn


def int8_one_scale(weight):
    scale = weight.abs().max() / 127
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale


def int8_no_abs(weight):
    scale = weight.amax(dim=-1, keepdim=True) / 127
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale


def int8_no_round(weight):
    scale = weight.abs().amax(dim=-1, keepdim=True) / 127
    return (weight / scale).clamp(-127, 127).to(torch.int8), scale


# ---------------------------------------------------------------- chapter 13 (pitfalls)


def mha_mask_float_wrong_way(allowed):
    return torch.zeros(allowed.shape).masked_fill(allowed, float("-inf"))


def scores_over_d(q, k):
    return q @ k.transpose(-2, -1) / q.size(-1)


def scores_over_tokens(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.size(1))


def _future_leak(changed_from=0, compare_until=0, change=True):
    """Change ids[:, cut + changed_from:], compare logits[:, :cut + compare_until] (None: every position)."""
    def fn(model, ids, cut):
        other = ids.clone()
        if change:
            other[:, cut + changed_from:] = (other[:, cut + changed_from:] + 1) % model.config.vocab_size
        with torch.no_grad():
            before, after = model(ids).logits, model(other).logits
        end = None if compare_until is None else cut + compare_until
        return (before[:, :end] - after[:, :end]).abs().max().item()
    return fn


def safe_softmax_nan(scores, allowed):
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)


def safe_softmax_uniform_row(scores, allowed):
    return torch.softmax(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), dim=-1)


def safe_softmax_mask_after(scores, allowed):
    return torch.softmax(scores, dim=-1) * allowed


# ---------------------------------------------------------------- the catalog


M = Mistake
MISTAKES: dict[str, list[Mistake]] = {
    "check_rnn_forward": [
        M("tanh(x @ w_x) for all tokens at once: the previous state is left out", rnn_forgets_state),
        M("the state starts at ones instead of zeros", rnn_starts_at_ones),
        M("returns only the last hidden state", rnn_last_state_only),
    ],
    "check_cosine_similarity": [
        M("plain dot products, table @ a, without dividing by the lengths", lambda a, table: table @ a),
        M("keeps a column axis: (N, 1) instead of (N,)",
          lambda a, table: (table @ a / (np.linalg.norm(table, axis=1) * np.linalg.norm(a)))[:, None]),
    ],
    "check_positional_encoding": [
        M("sin and cos swapped (cos on even columns)", sin_cos_swapped),
        M("frequencies 10000^(i / d) with i = 0, 1, 2, … instead of 2i / d", frequencies_over_i),
        M("positions counted from 1", positions_from_one),
        M("all the sines first, then all the cosines (np.concatenate)", sines_then_cosines),
    ],
    "check_softmax": [
        M("exp(x) / sum(exp(x)) without subtracting the max",
          lambda x: np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)),
        M("normalised over axis=0 (the columns)", lambda x: np.exp(x) / np.exp(x).sum(axis=0, keepdims=True)),
        M("divides the raw scores by their sum, no exp()", lambda x: x / x.sum(axis=-1, keepdims=True)),
        M("one max and one sum over the whole matrix (no axis)",
          lambda x: np.exp(x - x.max()) / np.exp(x - x.max()).sum()),
        M("e / e.sum(axis=-1): the sum without keepdims=True", softmax_sum_no_keepdims),
        M("x - x.max(axis=-1): the max without keepdims=True", softmax_max_no_keepdims),
        M("subtracts x.max(), one max for the whole matrix, not one per row", softmax_global_max),
    ],
    "check_attention": [
        M("forgets to divide by √d_k", attention_unscaled),
        M("softmax over the queries (axis=-2)", attention_over_queries),
        M("mask applied after the softmax (weights set to 0)", attention_mask_after_softmax),
        M("softmax without subtracting the max", attention_unstable),
        M("k.T instead of np.swapaxes(k, -1, -2)", attention_k_dot_t),
        M("returns only the output, not (output, weights)", attention_output_only),
        M("divides the scores by d_k, not √d_k", _attention_scaled_by(lambda q, v: q.shape[-1])),
        M("divides by √d_v (the width of v) instead of √d_k",
          _attention_scaled_by(lambda q, v: np.sqrt(v.shape[-1]))),
        M("the mask inverted: np.where(mask, -np.inf, scores)", _attention_scaled_by(_root_d_k, inverted_mask=True)),
        M("mask * scores instead of -inf where blocked", _attention_scaled_by(_root_d_k, mask_by_multiplying=True)),
    ],
    "check_causal_mask": [
        M("np.triu instead of np.tril", lambda n: np.triu(np.ones((n, n), dtype=bool))),
        M("True where the token must NOT look", lambda n: ~np.tril(np.ones((n, n), dtype=bool))),
        M("tril with k=-1: the diagonal left out", lambda n: np.tril(np.ones((n, n), dtype=bool), k=-1)),
    ],
    "check_multi_head": [
        M("merges the heads with a reshape but no transpose", _numpy_heads(merge_badly=True)),
        M("forgets the output projection w_o", _numpy_heads(skip_output=True)),
        M("ignores n_heads: one head of width d", _numpy_heads(single_head=True)),
    ],
    "check_split_heads": [
        M("view(B, T, heads, d_head) without the transpose", lambda x, h: x.view(x.shape[0], x.shape[1], h, -1)),
        M("reshape straight to (B, heads, T, d_head)", lambda x, h: x.reshape(x.shape[0], h, x.shape[1], -1)),
        M("view(B, T, d_head, heads): heads take every n-th feature",
          lambda x, h: x.view(x.shape[0], x.shape[1], -1, h).permute(0, 3, 1, 2)),
        M("the sizes of the example written in: view(2, 5, 3, 4)", lambda x, h: x.view(2, 5, 3, 4).transpose(1, 2)),
    ],
    "check_merge_heads": [
        M("transposes back but does not join the heads", lambda x: x.transpose(1, 2)),
        M("reshape to (B, T, C) without the transpose", _reshape_merge),
        M(".view instead of .reshape after the transpose", merge_with_view),
    ],
    "check_multi_head_torch": [
        M("forgets the output projection w_o", torch_heads(project=False)),
        M("scores not scaled", torch_heads(scale=lambda x, q: 1.0)),
        M("divides by √C (the model width) instead of √d_head", torch_heads(scale=lambda x, q: x.shape[-1])),
        M("splits and merges with reshape, no transpose", torch_heads(split=_reshape_split, merge=_reshape_merge)),
        M("merges with .view after the transpose", torch_heads(merge=merge_with_view)),
        M("uses the weights as nn.Linear does, x @ w.T",
          torch_heads(transposed=("w_q", "w_k", "w_v", "w_o"))),
        M("softmax over dim=-2", torch_heads(softmax_dim=-2)),
    ],
    "check_layer_norm": [
        M("mean and variance over dim 0 (the batch)", _layer_norm(dim=0)),
        M("mean and variance over dim 1 (the tokens)", _layer_norm(dim=1)),
        M("x.var(dim=-1) with PyTorch's default unbiased=True", _layer_norm(unbiased=True)),
        M("mean without keepdim=True", layer_norm_no_keepdim),
        M("no eps: torch.sqrt(var)", _layer_norm(with_eps=False)),
        M("eps outside the root: torch.sqrt(var) + eps", layer_norm_eps_outside),
        M("root mean square without centring (RMSNorm)", rms_norm),
        M("forgets gain and bias", _layer_norm(affine=False)),
    ],
    "check_feed_forward": [
        M("no ReLU between the layers", lambda x, w1, b1, w2, b2: (x @ w1 + b1) @ w2 + b2),
        M("a ReLU after the second layer too", lambda x, w1, b1, w2, b2: torch.relu(torch.relu(x @ w1 + b1) @ w2 + b2)),
        M("forgets b2", lambda x, w1, b1, w2, b2: torch.relu(x @ w1 + b1) @ w2),
        M("forgets b1", lambda x, w1, b1, w2, b2: torch.relu(x @ w1) @ w2 + b2),
    ],
    "check_block": [
        M("no residual connections", block_no_residual),
        M("pre-LN and post-LN swapped", block_pre_post_swapped),
        M("pre-LN that normalises the stream itself, x = norm1(x)", block_normalised_stream),
        M("post-LN with norm1 and norm2 swapped", block_norms_swapped),
    ],
    "check_padding_mask": [
        M("True on the pads (the nn.MultiheadAttention convention)", lambda l, m: ~_padding(l, m)),
        M("the length axis on the queries: (B, 1, T, 1)", lambda l, m: _padding(l, m).transpose(0, 1, 3, 2)),
        M("(B, T) without the broadcasting axes", lambda l, m: _padding(l, m)[:, 0, 0]),
        M("position <= length", lambda l, m: (np.arange(m)[None, :] <= np.array(l)[:, None])[:, None, None, :]),
    ],
    "check_cross_attention": [
        M("queries from memory, keys and values from x", cross_swapped_roles),
        M("keeps a causal mask", cross_with_causal_mask),
        M("forgets to divide by √d_k", cross_unscaled),
        M("weights @ memory: the values not projected", cross_unprojected_values),
        M("keys and values from x: self-attention", cross_self_attention),
    ],
    "check_training_step": [
        M("no optimizer.zero_grad()", _training_step(zero=False)),
        M("clip_grad_value_ instead of clip_grad_norm_", _training_step(clip="value")),
        M("clips after optimizer.step()", _training_step(clip_after=True)),
        M("no clipping at all", _training_step(clip=None)),
    ],
    "check_transformer_lr": [
        M("max of the two terms instead of min", lambda s, d, w: d ** -0.5 * max(s ** -0.5, s * w ** -1.5)),
        M("forgets the d_model ** -0.5 factor", lambda s, d, w: min(s ** -0.5, s * w ** -1.5)),
        M("warmup ** -0.5 in the warmup term", lambda s, d, w: d ** -0.5 * min(s ** -0.5, s * w ** -0.5)),
        M("counts steps from 0", lambda s, d, w: d ** -0.5 * min(max(s - 1, 1) ** -0.5, (s - 1) * w ** -1.5)),
    ],
    "check_sampling": [
        M("divides the probabilities by the temperature, after the softmax", sampling_divides_probabilities),
        M("top-k keeps logits strictly greater than the k-th", sampling_strictly_greater),
        M("top-k zeroes probabilities without renormalising", sampling_not_renormalised),
        M("no special case for temperature 0", sampling_no_greedy_case),
    ],
    "check_generation": [
        M("no crop: the whole text goes to the model", _generate(lambda idx, block: idx)),
        M("crops to the first block_size tokens", _generate(lambda idx, block: idx[:, :block])),
        M("reads the first position's logits, [:, 0, :]", _generate(_LAST, position=0)),
        M("always takes the argmax", _generate(_LAST, sample=False)),
        M("returns only the new tokens", _generate(_LAST, prompt=False)),
    ],
    "check_punctuation_score": [
        M("punctuation rows (as queries) instead of columns",
          _punctuation(_no_letters, as_queries=True)),
        M("sums over the queries instead of averaging", _punctuation(_no_letters, reduce_queries="sum")),
        M("averages over the punctuation keys instead of adding them", _punctuation(_no_letters, reduce_keys="mean")),
        M("a fixed list: token in \",.!?\"", _punctuation(lambda t: t in ",.!?")),
        M("token in string.punctuation", _punctuation(lambda t: t in string.punctuation)),
    ],
    "check_rollout": [
        M("adds the identity without renormalising the rows", _rollout(renormalise=False)),
        M("multiplies the layers in the wrong order, result @ layer", _rollout(reverse=True)),
        M("multiplies element by element (*)", _rollout(elementwise=True)),
        M("a fixed residual of 0.5", _rollout(fixed_residual=0.5)),
    ],
    "check_sliding_window_mask": [
        M("j >= i - window: one key too many", lambda s, w: _band(s, w + 1)),
        M("|i - j| < window: looks both ways",
          lambda s, w: np.abs(np.arange(s)[:, None] - np.arange(s)[None, :]) < w),
        M("the plain causal mask, no window", lambda s, w: np.tril(np.ones((s, s), dtype=bool))),
        M("the band transposed: looks ahead", lambda s, w: _band(s, w).T),
    ],
    "check_cache_step": [
        M("positions start at 0 for the new tokens too", _cache_step(first_position=0)),
        M("is_causal=True with a cache", _cache_step(top_left=True)),
        M("returns only the new keys and values as the cache", cache_returns_only_new),
    ],
    "check_sentence_embedding": [
        M("the [CLS] vector only", embedding_cls_only),
        M("hidden.mean(dim=1): the pads included", embedding_pads_included),
        M("forgets to normalise to length 1", embedding_not_normalised),
        M("1 - mask: averages the pads", embedding_inverted_mask),
    ],
    "check_top_k": [
        M("ranks by the raw dot product", lambda q, docs, k: np.argsort(-(docs @ q))[:k]),
        M("np.argsort(scores)[:k]: the worst first", lambda q, docs, k: np.argsort(_cosine(q, docs))[:k]),
        M("returns the best scores, not their indices", lambda q, docs, k: np.sort(_cosine(q, docs))[::-1][:k]),
    ],
    "check_recall_at_k": [
        M("adds up the hits instead of taking the mean",
          _recall(lambda top, rel, k: bool(set(top) & rel), reduce=np.sum)),
        M("precision@k: relevant share of the top k", _recall(lambda top, rel, k: len(set(top) & rel) / k)),
        M("looks only at the k-th item", _recall(lambda top, rel, k: top[-1] in rel)),
        M("ranked[:k + 1]: one too many", _recall(lambda top, rel, k: bool(set(top) & rel), k_shift=1)),
    ],
    "check_confusion": [
        M("table[predicted, true]: rows are the predictions", confusion_transposed),
        M("table[true, predicted] += 1 with whole arrays", confusion_fancy_index),
    ],
    "check_gpt2_parameters": [
        M("counts the output layer as well (not tied)", _gpt2(output_layer=True)),
        M("forgets the position embedding", _gpt2(positions=False)),
        M("the rule of thumb 12·L·C² + V·C", _gpt2(rule_of_thumb=True)),
    ],
    "check_int8_rows": [
        M("one scale for the whole matrix", int8_one_scale),
        M("the row max without abs()", int8_no_abs),
        M(".to(torch.int8) without rounding", int8_no_round),
        M("scale = absmax (no / 127)", lambda w: (torch.round(127 * w / w.abs().amax(-1, keepdim=True))
                                                  .to(torch.int8), w.abs().amax(-1, keepdim=True))),
    ],
    "check_mha_mask": [
        M("passes the SDPA mask unchanged", lambda allowed: allowed),
        M("a float mask with -inf where allowed", mha_mask_float_wrong_way),
        M("an integer mask, (~allowed).int()", lambda allowed: (~allowed).int()),
    ],
    "check_mean_pool": [
        M("hidden.mean(dim=1): the pads included", lambda h, m: h.mean(dim=1)),
        M("masked sum divided by T", lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.size(1)),
        M("the masked sum, not divided", lambda h, m: (h * m.unsqueeze(-1)).sum(1)),
    ],
    "check_safe_fill": [
        M("masked_fill(~allowed, -1e9)", lambda s, a: s.masked_fill(~a, -1e9)),
        M("masked_fill(~allowed, float('-inf'))", lambda s, a: s.masked_fill(~a, float("-inf"))),
        M("masked_fill(~allowed, -1e4)", lambda s, a: s.masked_fill(~a, -1e4)),
    ],
    "check_scaled_scores": [
        M("no scaling", lambda q, k: q @ k.transpose(-2, -1)),
        M("divides by d_k, not its root", scores_over_d),
        M("√ of the number of tokens", scores_over_tokens),
        M("k @ q.transpose(-2, -1)", lambda q, k: k @ q.transpose(-2, -1) / math.sqrt(q.size(-1))),
    ],
    "check_future_leak": [
        M("compares every position, not only those before cut", _future_leak(compare_until=None)),
        M("runs the model twice on the same ids", _future_leak(change=False)),
        M("compares logits[:, :cut - 1]: position cut - 1 left out", _future_leak(compare_until=-1)),
    ],
    "check_safe_softmax": [
        M("fills -inf and stops: the empty row is NaN", safe_softmax_nan),
        M("fills finfo.min and stops: the empty row is uniform", safe_softmax_uniform_row),
        M("softmax first, then * allowed", safe_softmax_mask_after),
    ],
}
del M


def run(checker: str, mistake: Mistake) -> checkers.CheckResult:
    """Run one wrong answer through its checker without printing anything."""
    check = getattr(checkers, checker)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # overflow warnings are part of some mistakes, not news
        return check(mistake.answer, verbose=False)


def messages(checker: str) -> list[tuple[str, str]]:
    """(what the learner wrote, the checker's verbatim ✗ message) for each catalogued mistake of ``checker``."""
    if checker not in MISTAKES:
        raise KeyError(f"no wrong answers catalogued for {checker!r}: add them to MISTAKES in {__name__}.")
    return [(mistake.what, run(checker, mistake).message()) for mistake in MISTAKES[checker]]
