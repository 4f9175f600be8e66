"""Chapter 11: what attention costs, measured on this machine, and cheaper kinds of attention.

- Measuring: :func:`median_seconds` (time), :func:`peak_memory` (bytes, from the allocator: the
  profiler's allocation events on a CPU, ``torch.cuda.max_memory_allocated`` on a GPU),
  :func:`sdpa_backend` (which kernel ``F.scaled_dot_product_attention`` ran), :func:`crossover`.
- Attention without the T × T matrix: :func:`online_softmax_attention` (key blocks and a running
  softmax, the idea behind fused / flash kernels).
- Cheaper attention: :func:`sliding_window_mask` and :func:`local_attention_blocked` (local),
  :func:`linear_attention` and :func:`linear_attention_direct` (Katharopoulos et al. 2020),
  :func:`grouped_query_attention` and :func:`kv_cache_bytes` (grouped- and multi-query).
- Writing with a key/value cache: :func:`cache_step` and :func:`generate_cached` (greedy).
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from attnlab import validate
from attnlab.errors import InputError


# ------------------------------------------------------------------ measuring


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """The median wall-clock time of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    if not callable(fn):
        raise InputError(f"give a function to time, such as lambda: attention(q, k, v), not {type(fn).__name__}.")
    repeats = validate.whole_number(repeats, "repeats", minimum=1)
    for _ in range(validate.whole_number(warmup, "warmup")):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize()
        start = time.perf_counter()
        fn()
        _synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # a GPU runs asynchronously: wait for it, or we time only the launch


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what C++ code writes to the process's stderr (the profiler's start/stop lines)."""
    try:
        saved = os.dup(2)
    except OSError:  # no real file descriptor 2: nothing to silence
        yield
        return
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _allocations(prof) -> list[tuple[int, int]]:
    """(time, bytes) of every allocation (+) and free (−) the allocator reported to the profiler."""
    try:  # every single event, also those inside one operator
        from torch._C._profiler import _EventType

        found = []

        def walk(node):
            if node.tag == _EventType.Allocation:
                found.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
            for child in node.children:
                walk(child)

        for root in prof.profiler.kineto_results.experimental_event_tree():
            walk(root)
        if found:
            return found
    except (ImportError, AttributeError, RuntimeError):
        pass
    # Older or newer PyTorch: the net bytes each operator allocated (hides buffers freed inside it)
    return [(int(e.time_range.start * 1e3), int(e.self_cpu_memory_usage)) for e in prof.events()]


def peak_memory(fn: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """The most bytes ``fn()`` held at once beyond what was allocated before it ran, from the allocator.

    On a GPU: ``torch.cuda.max_memory_allocated``. On a CPU: the allocator reports each allocation
    and free to ``torch.profiler`` (``profile_memory=True``); their running sum, in time order, peaks here.
    """
    if not callable(fn):
        raise InputError(f"give a function to measure, such as lambda: attention(q, k, v), not {type(fn).__name__}.")
    device = validate.device(device) or torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated(device) - before)
    from torch.profiler import ProfilerActivity, profile

    with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for _, size in sorted(_allocations(prof)):
        live += size
        peak = max(peak, live)
    return peak


def sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options) -> str:
    """The kernel ``F.scaled_dot_product_attention(q, k, v, **options)`` runs, read from the profiler's operator names."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        validate.tensor(x, name, min_dims=2)
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if q.is_cuda else [])
    with _quiet_native_stderr(), profile(activities=activities) as prof, torch.no_grad():
        F.scaled_dot_product_attention(q, k, v, **options)
    names = [e.name for e in prof.events() if e.name.startswith("aten::_scaled_dot_product")
             or e.name.startswith("aten::_flash_attention") or e.name.startswith("aten::_efficient_attention")]
    return names[0].removeprefix("aten::") if names else "math (written out inside PyTorch)"


def crossover(lengths: Sequence[int], cheap: Sequence[float], dear: Sequence[float]) -> int | None:
    """The first length from which ``dear`` cost more than ``cheap`` at it and at every longer length measured."""
    if not (len(lengths) == len(cheap) == len(dear)) or not lengths:
        raise InputError("give one measurement of each per length: lengths, cheap and dear must have the same length.")
    found = None
    for length, a, b in sorted(zip(lengths, cheap, dear)):
        found = (length if found is None else found) if b > a else None
    return found


# ------------------------------------------------------------------ attention without the T × T matrix


def _check_qkv(q, k, v, grouped: bool = False) -> None:
    """q, k, v fit: same batch (and heads, unless ``grouped``: then the caller checks the head counts)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        validate.tensor(x, name, min_dims=2)
    if q.dim() != k.dim() or q.size(-1) != k.size(-1) or k.shape[:-1] != v.shape[:-1] \
            or q.shape[:-3] != k.shape[:-3] or (not grouped and q.shape[:-2] != k.shape[:-2]):
        raise InputError(f"q (..., T_q, d), k (..., T_k, d) and v (..., T_k, d_v) do not fit: got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}; k and v need the same batch, heads "
                         "and length, q the same batch and heads as k.")


def online_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = 128,
                             is_causal: bool = False) -> torch.Tensor:
    """softmax(q kᵀ / √d) v, reading the keys ``block`` at a time with a running softmax: no (T_q, T_k) matrix."""
    _check_qkv(q, k, v)
    block = validate.whole_number(block, "block", minimum=1)
    n_q, n_k = q.size(-2), k.size(-2)
    best = q.new_full((*q.shape[:-1], 1), float("-inf"))  # (..., T_q, 1): the largest score so far
    total = q.new_zeros((*q.shape[:-1], 1))  # the softmax's denominator so far, relative to `best`
    out = q.new_zeros((*q.shape[:-1], v.size(-1)))  # the weighted sum of values so far, relative to `best`
    queries = torch.arange(n_q, device=q.device)[:, None]
    for start in range(0, n_k, block):
        scores = q @ k[..., start:start + block, :].transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., T_q, block)
        if is_causal:
            keys = torch.arange(start, min(start + block, n_k), device=q.device)[None, :]
            scores = scores.masked_fill(keys > queries, float("-inf"))
        new_best = torch.maximum(best, scores.amax(dim=-1, keepdim=True))
        safe = new_best.masked_fill(torch.isinf(new_best), 0.0)  # a row that has seen no key yet
        weights = torch.exp(scores - safe)  # (..., T_q, block), not yet normalised
        rescale = torch.exp(best - safe)  # the old sums were relative to the old best
        total = total * rescale + weights.sum(dim=-1, keepdim=True)
        out = out * rescale + weights @ v[..., start:start + block, :]
        best = new_best
    return out / total


# ------------------------------------------------------------------ local (sliding-window) attention


def sliding_window_mask(size: int, window: int, device=None) -> torch.Tensor:
    """(size, size) booleans, True where query i may see key j: the ``window`` keys j with i − window < j ≤ i."""
    size = validate.whole_number(size, "size", minimum=1)
    window = validate.whole_number(window, "window", minimum=1)
    i = torch.arange(size, device=device)[:, None]
    j = torch.arange(size, device=device)[None, :]
    return (j <= i) & (j > i - window)


def local_attention_blocked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                            block: int = 64) -> torch.Tensor:
    """Sliding-window causal attention computed ``block`` queries at a time, each against only its keys in reach."""
    _check_qkv(q, k, v)
    if q.size(-2) != k.size(-2):
        raise InputError(f"local self-attention needs as many queries as keys, got {q.size(-2)} and {k.size(-2)}.")
    window = validate.whole_number(window, "window", minimum=1)
    block = validate.whole_number(block, "block", minimum=1)
    outputs = []
    for start in range(0, q.size(-2), block):
        stop = min(start + block, q.size(-2))
        first = max(0, start - window + 1)  # the earliest key any query of this block may see
        i = torch.arange(start, stop, device=q.device)[:, None]
        j = torch.arange(first, stop, device=q.device)[None, :]
        sees = (j <= i) & (j > i - window)  # (block, keys in reach)
        outputs.append(F.scaled_dot_product_attention(q[..., start:stop, :], k[..., first:stop, :],
                                                      v[..., first:stop, :], attn_mask=sees))
    return torch.cat(outputs, dim=-2)


# ------------------------------------------------------------------ linear attention


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1: positive everywhere, Katharopoulos et al.'s choice."""
    return F.elu(x) + 1


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = True,
                     chunk: int = 64) -> torch.Tensor:
    """Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j), in time linear in T.

    Causal, it reads ``chunk`` positions at a time: inside a chunk the small (chunk, chunk) formula,
    from earlier chunks a running state S = Σ φ(k_j) v_jᵀ (d, d_v) and z = Σ φ(k_j) (d,).
    """
    _check_qkv(q, k, v)
    fq, fk = feature_map(q), feature_map(k)  # (..., T, d)
    if not is_causal:
        kv = fk.transpose(-2, -1) @ v  # (..., d, d_v): every key's φ(k) vᵀ, summed once
        return (fq @ kv) / (fq @ fk.sum(dim=-2)[..., None])  # (..., T, d_v)
    if q.size(-2) != k.size(-2):
        raise InputError(f"causal attention needs as many queries as keys, got {q.size(-2)} and {k.size(-2)}.")
    chunk = validate.whole_number(chunk, "chunk", minimum=1)
    state = q.new_zeros((*q.shape[:-2], q.size(-1), v.size(-1)))  # S: (..., d, d_v)
    norm = q.new_zeros((*q.shape[:-2], q.size(-1), 1))  # z: (..., d, 1)
    outputs = []
    for start in range(0, q.size(-2), chunk):
        fq_c, fk_c, v_c = (x[..., start:start + chunk, :] for x in (fq, fk, v))
        within = (fq_c @ fk_c.transpose(-2, -1)).tril()  # (..., c, c): this chunk's own keys, causal
        numerator = fq_c @ state + within @ v_c  # (..., c, d_v)
        denominator = fq_c @ norm + within.sum(dim=-1, keepdim=True)  # (..., c, 1)
        outputs.append(numerator / denominator)
        state = state + fk_c.transpose(-2, -1) @ v_c
        norm = norm + fk_c.sum(dim=-2)[..., None]
    return torch.cat(outputs, dim=-2)


def linear_attention_direct(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = True) -> torch.Tensor:
    """The same formula the slow way: the (T, T) matrix of φ(q_i)·φ(k_j), rows normalised, times v."""
    _check_qkv(q, k, v)
    similarity = feature_map(q) @ feature_map(k).transpose(-2, -1)  # (..., T_q, T_k), all positive
    if is_causal:
        similarity = similarity.tril()
    return (similarity / similarity.sum(dim=-1, keepdim=True)) @ v


# ------------------------------------------------------------------ grouped-query attention


def grouped_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
    """q (B, H, T, d) and k, v (B, G, T, d), G dividing H: query heads h share key/value head h // (H / G)."""
    _check_qkv(q, k, v, grouped=True)
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise InputError("q, k and v must be (batch, heads, tokens, head size).")
    heads, groups = q.size(1), k.size(1)
    if v.size(1) != groups or heads % groups:
        raise InputError(f"k and v need the same number of heads, dividing q's {heads}; got {groups} and {v.size(1)}.")
    k = k.repeat_interleave(heads // groups, dim=1)  # (B, H, T, d): each key/value head serves H / G query heads
    v = v.repeat_interleave(heads // groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def kv_cache_bytes(n_layer: int, n_kv_heads: int, head_dim: int, length: int, batch: int = 1,
                   bytes_per_number: int = 4) -> int:
    """Bytes of a key/value cache: keys and values, every layer, key/value head, position and number."""
    numbers = [validate.whole_number(n, what, minimum=1) for n, what in
               ((n_layer, "n_layer"), (n_kv_heads, "n_kv_heads"), (head_dim, "head_dim"), (length, "length"),
                (batch, "batch"), (bytes_per_number, "bytes_per_number"))]
    return 2 * math.prod(numbers)


# ------------------------------------------------------------------ writing with a key/value cache


def _check_gpt(model) -> None:
    if not all(hasattr(model, name) for name in ("token_embedding", "position_embedding", "blocks", "config")):
        raise InputError("give a course GPT (attnlab.gpt.GPT), e.g. gpt_from_loaded(load('minigpt')), "
                         f"not {type(model).__name__}.")


def cache_step(model, ids: torch.Tensor, cache: list) -> tuple[torch.Tensor, list]:
    """Read ``ids`` (B, t) after the P positions in ``cache`` → logits (B, t, vocab) and the cache grown to P + t.

    ``cache`` holds one (keys, values) pair per layer, each (B, heads, P, head size); [] to start.
    """
    return _cache_step(model, ids, cache)


def _cache_step(model, ids: torch.Tensor, cache: list, first_position: int | None = None,
                top_left: bool = False) -> tuple[torch.Tensor, list]:
    """:func:`cache_step`; ``first_position`` other than P, and ``top_left`` (the mask of ``is_causal=True``,
    aligned to the first key instead of the last), are mistakes the checkers recognise."""
    _check_gpt(model)
    validate.tensor(ids, "ids", min_dims=2, floating=False)
    if not isinstance(cache, (list, tuple)):
        raise InputError(f"cache must be a list of (keys, values) pairs, one per layer, or [] to start; "
                         f"got {type(cache).__name__}.")
    past = cache[0][0].size(2) if cache else 0
    if past + ids.size(1) > model.config.block_size:
        raise InputError(f"{past} cached + {ids.size(1)} new positions exceed the model's window of "
                         f"{model.config.block_size}: the positions are absolute, so a cache stops there.")
    start = past if first_position is None else first_position
    positions = torch.arange(start, start + ids.size(1), device=ids.device)  # (t,)
    x = model.token_embedding(ids) + model.position_embedding(positions)  # (B, t, C)
    queries = torch.arange(past, past + ids.size(1), device=ids.device)
    sees = torch.arange(past + ids.size(1), device=ids.device)[None, :] <= queries[:, None]  # (t, P + t)
    if top_left:
        sees = torch.ones(ids.size(1), past + ids.size(1), dtype=torch.bool, device=ids.device).tril()
    grown = []
    for layer, block in enumerate(model.blocks):
        attention, h = block.attention, block.norm1(x)
        q, k, v = (attention.split_heads(proj(h)) for proj in (attention.q_proj, attention.k_proj, attention.v_proj))
        if cache:
            k = torch.cat((cache[layer][0], k), dim=2)  # (B, H, P + t, hd): along the positions
            v = torch.cat((cache[layer][1], v), dim=2)
        grown.append((k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=sees)  # (B, H, t, hd)
        x = x + attention.out_proj(attention.merge_heads(out))
        x = x + block.feed_forward(block.norm2(x))
    return model.lm_head(model.final_norm(x)), grown


@torch.no_grad()
def generate_cached(model, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Greedy generation with a key/value cache: the same tokens as ``model.generate(idx, n, temperature=0)``."""
    _check_gpt(model)
    max_new_tokens = validate.whole_number(max_new_tokens, "max_new_tokens")
    validate.tensor(idx, "idx", min_dims=2, floating=False)
    if idx.size(1) == 0 or idx.size(1) + max_new_tokens > model.config.block_size + 1:
        raise InputError(f"the prompt ({idx.size(1)}) plus the new tokens ({max_new_tokens}) must fit the window "
                         f"of {model.config.block_size} + 1 (the last token is never read back): beyond it the window "
                         "slides and every cached key is stale.")
    logits, cache = cache_step(model, idx, [])  # the prompt, all at once
    for step in range(max_new_tokens):
        next_id = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        idx = torch.cat((idx, next_id), dim=1)
        if step < max_new_tokens - 1:
            logits, cache = cache_step(model, next_id, cache)  # one new position: one token's work
    return idx
