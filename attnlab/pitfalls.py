"""The usual mistakes with Transformers, each as a demo that measures the symptom broken and fixed.

Every demo returns a :class:`Demo`: what it measured, the number (or outcome) with the mistake, the
number with the fix, and ``shown``: whether the symptom appeared broken and vanished fixed, decided
by the measurement. Behaviour that depends on library versions is measured here, never assumed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnlab import doctor
from attnlab.doctor import without_causal_mask, without_positions  # noqa: F401 (the broken twins)
from attnlab.pitfalls_masks import (  # noqa: F401 (re-exported: pitfalls.mask_table, pitfalls.Demo, ...)
    Demo, causal_with_cache, fp16_mask_value, fully_masked_row, mask_convention, mask_mixups, mask_table,
    masked_softmax, plain, sdpa_fully_masked)


@dataclass(frozen=True)
class Pitfall:
    """One row of the symptom → cause → fix table."""

    symptom: str
    cause: str
    fix: str
    chapter: str  # the docname that teaches it
    demo: str  # the function of this module (or of pitfalls_masks, re-exported here) that measures it


PITFALLS = [
    Pitfall("training loss falls near zero, generated text is garbage", "no causal mask in a generator",
            "is_causal=True, or a lower-triangular mask (True = attend in SDPA)", "09-build-your-own-mini-gpt",
            "no_causal_mask"),
    Pitfall("“dog bites man” = “man bites dog”", "no positional information",
            "add positional encodings (or RoPE)", "03-positional-encoding", "no_positions"),
    Pitfall("weights almost one-hot at init, gradients vanish", "scores not divided by √d_k",
            "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)", "04-attention-from-scratch", "no_sqrt_dk"),
    Pitfall("early training diverges or stalls", "post-LN block trained without warmup",
            "learning-rate warmup, or pre-LN blocks", "06-transformer-block", "post_ln_gradients"),
    Pitfall("attention to the future, or NaN rows", "a boolean mask passed with the wrong convention",
            "SDPA: True = attend; nn.MultiheadAttention: True = blocked (pass ~mask)", "05-multi-head-attention",
            "mask_convention"),
    Pitfall("with a KV cache, each new token reads only the first key", "is_causal=True when T_q < T_k (it aligns "
            "top-left)", "pass an explicit mask for the cached keys", "11-cost-and-scale", "causal_with_cache"),
    Pitfall("the same sentence gets another vector in a batch", "padding not masked (model or pooling)",
            "pass attention_mask, and average over real tokens only", "07-masks-decoders-families", "padding"),
    Pitfall("output_attentions=True gives no maps", "transformers 5 loads SDPA attention by default",
            "from_pretrained(..., attn_implementation=\"eager\")", "10-attention-in-pretrained-models",
            "sdpa_attentions"),
    Pitfall("error or NaN as soon as you use fp16", "mask value -1e9 (or float32's min) overflows in fp16",
            "torch.finfo(scores.dtype).min, or a boolean mask", "09-build-your-own-mini-gpt", "fp16_mask_value"),
    Pitfall("NaN in the output of one text of a batch", "a query row with every key masked",
            "zero such rows after softmax (or never mask a whole row)", "07-masks-decoders-families",
            "fully_masked_row"),
    Pitfall("the same input gives different outputs", "model.eval() forgotten: dropout still on",
            "model.eval() before evaluating or generating", "06-transformer-block", "forgot_eval"),
    Pitfall("loss drops to ~0 in a few steps", "targets not shifted: the model copies its input",
            "targets = the text one token later", "08-training-a-tiny-transformer", "unshifted_targets"),
    Pitfall("attention rows do not sum to 1", "softmax over the wrong dimension",
            "softmax(scores, dim=-1): over the keys", "04-attention-from-scratch", "softmax_wrong_dim"),
    Pitfall("out of memory at inference", "no torch.no_grad(): activations kept for a backward pass",
            "with torch.no_grad(): (or torch.inference_mode())", "11-cost-and-scale", "no_grad_peak"),
    Pitfall("an error from deep inside torch on a long text", "text longer than the model's positions",
            "truncation=True, max_length=...", "10-attention-in-pretrained-models", "too_long"),
]


# ------------------------------------------------------------------ the demos


def no_causal_mask(gpt) -> Demo:
    """Future leak of a GPT without and with its causal mask."""
    broken, fixed = doctor.future_leak(without_causal_mask(gpt)), doctor.future_leak(gpt)
    return Demo("change of earlier logits when later tokens change", broken, fixed,
                broken > doctor.TOLERANCE > fixed)


def no_positions(model="minilm") -> Demo:
    """How far from order-blind a model is with its positions zeroed (broken) and intact (fixed)."""
    broken, fixed = doctor.order_blind(without_positions(model)), doctor.order_blind(model)
    return Demo("change of the outputs when the words are shuffled", broken, fixed,
                broken < doctor.TOLERANCE < fixed)


def _softmax_health(d_k: int, scale: bool, length: int = 32, rows: int = 256, seed: int = 0) -> tuple[float, float]:
    """Mean largest weight and mean gradient norm reaching the scores, for unit-variance q, k of size d_k."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(rows, length, d_k, generator=generator)
    k = torch.randn(rows, length, d_k, generator=generator)
    scores = (q @ k.transpose(-2, -1) / (math.sqrt(d_k) if scale else 1.0)).requires_grad_()  # (rows, T, T)
    weights = torch.softmax(scores, dim=-1)
    upstream = torch.randn(weights.shape, generator=generator)  # a random loss gradient reaching the weights
    (weights * upstream).sum().backward()
    return float(weights.detach().max(-1).values.mean()), float(scores.grad.norm(dim=-1).mean())


def no_sqrt_dk(dims=(16, 64, 256, 1024)) -> dict:
    """For each head size: largest weight and gradient through softmax, without and with the √d_k."""
    from attnlab.validate import whole_number

    dims = [whole_number(d, "each head size in dims", minimum=1) for d in dims]
    result = {"dims": list(dims)}
    for name, scale in (("unscaled", False), ("scaled", True)):
        measured = [_softmax_health(d, scale) for d in dims]
        result[name] = {"max_weight": [m[0] for m in measured], "grad_norm": [m[1] for m in measured]}
    return result


def post_ln_gradients(n_layers: int = 6, width: int = 64, heads: int = 4, vocab: int = 64, length: int = 32,
                      seeds: int = 3) -> dict:
    """Gradient norm of each block's weights at initialisation, post-LN against pre-LN (averaged over seeds)."""
    from attnlab.blocks import TransformerBlock

    norms = {}
    for kind, norm_first in (("post-LN", False), ("pre-LN", True)):
        per_layer = torch.zeros(n_layers)
        for seed in range(seeds):
            torch.manual_seed(seed)
            blocks = nn.ModuleList(TransformerBlock(width, heads, 4 * width, norm_first=norm_first)
                                   for _ in range(n_layers))
            final = nn.LayerNorm(width) if norm_first else nn.Identity()  # pre-LN stacks end with a LayerNorm
            head = nn.Linear(width, vocab)
            x = torch.randn(8, length, width)  # (B, T, C)
            for block in blocks:
                x, _ = block(x)
            targets = torch.randint(0, vocab, (8, length))
            F.cross_entropy(head(final(x)).flatten(0, 1), targets.flatten()).backward()
            per_layer += torch.tensor([math.sqrt(sum(float(p.grad.pow(2).sum()) for p in block.parameters()))
                                       for block in blocks])
        norms[kind] = (per_layer / seeds).tolist()
    return norms


GROWTH = 1.2  # last block's gradient over the first: above this, the rise Xiong et al. describe counts as shown


def xiong_shown(norms: dict) -> bool:
    """Whether post-LN's gradients rise towards the output (ratio > GROWTH) while pre-LN's stay below that rise."""
    post, pre = norms["post-LN"], norms["pre-LN"]
    return post[-1] / post[0] > GROWTH and pre[-1] / pre[0] < post[-1] / post[0]


def _mean_vectors(net, encoding, use_mask: bool, pool_real_only: bool) -> torch.Tensor:
    mask = encoding["attention_mask"]
    with torch.no_grad():
        hidden = net(input_ids=encoding["input_ids"], attention_mask=mask if use_mask else torch.ones_like(mask),
                     token_type_ids=encoding.get("token_type_ids")).last_hidden_state  # (B, T, C)
    weights = mask.unsqueeze(-1).float() if pool_real_only else torch.ones_like(hidden[..., :1])  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1)  # (B, C)


def padding(model="minilm", short: str = "The cat sat on the mat.",
            long: str = "A much longer sentence that forces the short one to be padded with many extra tokens.",
            ) -> dict:
    """1 − cos between a sentence's mean vector alone and in a padded batch: mask forgotten, pads pooled, both right."""
    from attnlab.models import as_loaded

    loaded = as_loaded(model)
    net, tokenizer = loaded.model, loaded.tokenizer
    alone = _mean_vectors(net, tokenizer([short], return_tensors="pt").to(loaded.device), True, True)[0]
    batch = tokenizer([short, long], padding=True, return_tensors="pt").to(loaded.device)
    gap = {}
    for name, use_mask, real_only in (("no attention mask", False, True), ("pads in the average", True, False),
                                      ("mask and real-token average", True, True)):
        vector = _mean_vectors(net, batch, use_mask, real_only)[0]
        gap[name] = float(1 - F.cosine_similarity(alone, vector, dim=0))
    gap["pads"] = int((batch["attention_mask"][0] == 0).sum())
    return gap


def attentions_outcome(net, encoding) -> str:
    """What ``output_attentions=True`` gives this model: maps, None, an empty tuple, or the error raised."""
    try:
        with torch.no_grad():
            maps = net(**encoding, output_attentions=True).attentions
    except Exception as error:  # the version decides; report whatever it does
        return f"raises {type(error).__name__}"
    if maps is None:
        return "attentions is None"
    if len(maps) == 0:
        return "attentions is an empty tuple"
    if any(m is None for m in maps):
        return "attentions holds None per layer"
    return f"{len(maps)} maps of shape {' × '.join(map(str, maps[0].shape))}"


class _Collect(logging.Handler):
    """Keeps the log records it sees, so that a page can show them instead of printing them."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def sdpa_attentions(folder=None, text: str = "The cat sat on the mat.") -> Demo:
    """MiniLM loaded as transformers loads it by default, and with eager attention: what output_attentions gives.

    ``broken`` and ``fixed`` are (attn_implementation, outcome, first log line or "") each; the log lines
    transformers writes are collected (not printed) so the page can show them.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from attnlab.models import registered_folder

    folder = folder or registered_folder("minilm")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    encoding = tokenizer(text, return_tensors="pt")
    outcomes = {}
    library = hf_logging.get_logger("transformers")
    hf_logging.warning_once.cache_clear()  # a warning already given in this session would not come again
    bars = hf_logging.is_progress_bar_enabled()
    for name, options in (("default", {}), ("eager", {"attn_implementation": "eager"})):
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on the page
        try:
            net = AutoModel.from_pretrained(folder, local_files_only=True, **options).eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        collect = _Collect()
        level = hf_logging.get_verbosity()
        library.addHandler(collect)
        hf_logging.disable_default_handler()
        hf_logging.set_verbosity_warning()  # the library's default level (attnlab.models.load may have lowered it)
        try:
            outcome = attentions_outcome(net, encoding)
        finally:
            hf_logging.set_verbosity(level)
            hf_logging.enable_default_handler()
            library.removeHandler(collect)
        outcomes[name] = (net.config._attn_implementation, outcome, collect.lines[0] if collect.lines else "")
    broken, fixed = outcomes["default"], outcomes["eager"]
    shown = broken[0] != "eager" and " maps of shape " not in broken[1] and " maps of shape " in fixed[1]
    return Demo("what output_attentions=True returns", broken, fixed, shown,
                parts=("{} attention", "{}", "log: “{}”"))


def forgot_eval(seed: int = 0) -> Demo:
    """Largest difference between two passes over the same input: dropout on (train mode) and off (eval mode)."""
    from attnlab.gpt import GPT, GPTConfig

    torch.manual_seed(seed)
    net = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1))
    ids = torch.randint(0, 40, (2, 16))
    with torch.no_grad():
        broken = float((net.train()(ids).logits - net(ids).logits).abs().max())
        fixed = float((net.eval()(ids).logits - net(ids).logits).abs().max())
    return Demo("largest difference between two passes", broken, fixed, broken > 0 and fixed == 0)


def unshifted_targets(steps: int = 60, seed: int = 0) -> Demo:
    """Training loss of a tiny GPT after ``steps`` steps, targets = inputs (broken) and one character later (fixed)."""
    from attnlab.gpt import GPT, GPTConfig
    from attnlab.minigpt import random_windows, shakespeare_splits

    splits = shakespeare_splits()
    losses = {}
    for shift in (False, True):
        torch.manual_seed(seed)
        net = GPT(GPTConfig(vocab_size=splits.tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32))
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
        sampler = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            x, y = random_windows(splits.train, 16, 32, sampler)  # (B, T) each; y is x one character later
            loss = net(x, y if shift else x).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses[shift] = loss.item()
    return Demo(f"training loss after {steps} steps (nats)", losses[False], losses[True],
                losses[False] < 0.5 * losses[True])


def softmax_wrong_dim(seed: int = 0) -> Demo:
    """Largest distance of a row sum from 1: softmax over the queries (dim=-2, broken) and the keys (dim=-1)."""
    torch.manual_seed(seed)
    scores = torch.randn(4, 6, 6)  # (B, T_q, T_k)
    far = lambda w: float((w.sum(-1) - 1).abs().max())  # noqa: E731
    broken, fixed = far(torch.softmax(scores, dim=-2)), far(torch.softmax(scores, dim=-1))
    return Demo("largest |row sum − 1|", broken, fixed, broken > 1e-3 > fixed)


def too_long(model="minilm", words: int = 700) -> Demo:
    """A text longer than the model's positions: what the model does with it, and with truncation."""
    from attnlab.models import as_loaded

    loaded = as_loaded(model)
    text = " ".join(["word"] * words)
    encoding = loaded.tokenizer(text, return_tensors="pt").to(loaded.device)
    try:
        with torch.no_grad():
            loaded.model(**encoding)
        broken = f"ran on {encoding['input_ids'].size(1)} tokens"
    except Exception as error:  # the version decides which error
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        broken = f"raises {type(error).__name__}" + (f" (“{first[:120]}”)" if first else "")
    short = loaded.tokenizer(text, truncation=True, max_length=loaded.max_tokens, return_tensors="pt").to(loaded.device)
    with torch.no_grad():
        hidden = loaded.model(**short).last_hidden_state
    fixed = f"runs on {hidden.size(1)} tokens"
    return Demo(f"{encoding['input_ids'].size(1)} tokens for a model of {loaded.max_tokens} positions", broken, fixed,
                broken.startswith("raises"))


def no_grad_peak(gpt, batch: int = 8, length: int = 128) -> Demo:
    """Peak bytes of one forward pass from the allocator, with autograd recording (broken) and under no_grad."""
    from attnlab.cost import peak_memory

    ids = torch.randint(0, gpt.config.vocab_size, (batch, min(length, gpt.config.block_size)),
                        generator=torch.Generator().manual_seed(0)).to(doctor._device(gpt))

    def without_grad():
        with torch.no_grad():
            return gpt(ids).logits.sum()

    where = doctor._device(gpt)
    broken, fixed = peak_memory(lambda: gpt(ids).logits.sum(), where), peak_memory(without_grad, where)
    return Demo(f"peak memory of a forward pass over {ids.size(0)} × {ids.size(1)} ids", broken, fixed,
                broken > 1.5 * fixed, unit="bytes")


def wrong_tokenizer(text: str = "to be or not", writer="minigpt", reader="minilm") -> Demo:
    """Ids from ``writer``'s tokenizer decoded by ``reader``'s: no error, nonsense text (broken) vs the right one."""
    from attnlab.models import as_loaded

    writer, reader = as_loaded(writer), as_loaded(reader)
    write, read = writer.tokenizer, reader.tokenizer
    ids = write(text, add_special_tokens=False)["input_ids"]
    try:
        broken = read.decode(ids)
    except Exception as error:  # ids out of the reader's range raise
        broken = f"raises {type(error).__name__}"
    fixed = write.decode(ids)
    return Demo(f"{writer.name}'s ids for “{text}” decoded by {reader.name}'s tokenizer", broken, fixed,
                broken != fixed and not broken.startswith("raises"), parts=("“{}”",))


