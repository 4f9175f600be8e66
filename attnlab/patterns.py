"""Find what each head does: score every head for a few well-known attention patterns.

Each score is in [0, 1] and is the average, over the query tokens, of the attention mass
that the pattern predicts (or, for "broad", of how spread out the attention is). Induction
is measured on its own input: a random token sequence repeated twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnlab import validate
from attnlab.errors import InputError
from attnlab.extraction import AttentionRecord, attend
from attnlab.models import LoadedModel, as_loaded

DESCRIPTIONS = {
    "previous token": "attends to the token just before",
    "next token": "attends to the token just after",
    "self": "attends to its own token",
    "first token": "parks its attention on the first token ([CLS] or start), a 'sink' when nothing else fits",
    "separator": "attends to the separator tokens ([SEP], end of text)",
    "broad": "spreads its attention widely over the sentence",
    "induction": "copies: at a repeated token it attends to what followed that token last time",
}
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog because the dog was sleeping in the warm sun."


@dataclass(frozen=True)
class HeadPattern:
    """One head's score for one pattern."""

    pattern: str
    layer: int
    head: int
    score: float

    def describe(self) -> str:
        """One plain-English line."""
        return (f"Layer {self.layer}, head {self.head} {DESCRIPTIONS[self.pattern]} "
                f"(score {self.score:.2f}).")


def _diagonal_mass(maps: np.ndarray, offset: int) -> np.ndarray:
    """Mean weight on key = query + offset, over the queries that have such a key: (L, H)."""
    return np.diagonal(maps, offset=offset, axis1=-2, axis2=-1).mean(axis=-1)


def breadth(maps: np.ndarray, causal: bool) -> np.ndarray:
    """Mean normalised entropy of the rows, (L, H): 1 for uniform attention, 0 for one key."""
    length = maps.shape[-1]
    allowed = np.arange(1, length + 1) if causal else np.full(length, length)  # keys each query may see
    entropy = -(maps * np.log(np.clip(maps, 1e-12, None))).sum(axis=-1)  # (L, H, T)
    rows = allowed > 1  # a query with one possible key has no choice to spread
    return (entropy[..., rows] / np.log(allowed[rows])).mean(axis=-1)


def score_patterns(record: AttentionRecord) -> dict[str, np.ndarray]:
    """Scores in [0, 1] of every head for every pattern but induction: {pattern: (L, H)}."""
    maps = record.attentions.astype(np.float64)
    separators = np.array([s and i > 0 for i, s in enumerate(record.special)])
    scores = {
        "previous token": _diagonal_mass(maps, -1),
        "next token": _diagonal_mass(maps, 1) if not record.causal else np.zeros(maps.shape[:2]),
        "self": _diagonal_mass(maps, 0),
        "first token": maps[..., 1:, 0].mean(axis=-1),
        "separator": maps[..., separators].sum(axis=-1).mean(axis=-1) if separators.any() else np.zeros(maps.shape[:2]),
        "broad": breadth(maps, record.causal),
    }
    return {name: np.clip(value, 0.0, 1.0) for name, value in scores.items()}


def induction_scores(maps: np.ndarray, start: int, period: int) -> np.ndarray:
    """(L, H) scores on a sequence whose tokens from ``start`` repeat after ``period`` tokens.

    A query at the second copy of token i (position start + period + i) should attend to the
    token that followed the first copy (position start + i + 1); for the last token that is the
    second copy's own first token. Every position of the second copy is a query.
    """
    queries = np.arange(start + period, start + 2 * period)
    targets = queries - period + 1
    return maps[..., queries, targets].mean(axis=-1)


def induction_record(model: str | LoadedModel, period: int = 24, seed: int = 0) -> tuple[AttentionRecord, int]:
    """Attention on random vocabulary tokens repeated twice; returns (record, start of the first copy)."""
    import torch

    lm = as_loaded(model)
    period = validate.whole_number(period, "period", minimum=2)
    seed = validate.whole_number(seed, "seed")
    tokenizer = lm.tokenizer
    rng = np.random.default_rng(seed)
    special = set(tokenizer.all_special_ids)
    # Ids the tokenizer AND the model both know (a model may have fewer embeddings than its tokenizer has ids).
    vocab = min(tokenizer.vocab_size, getattr(lm.model.config, "vocab_size", None) or tokenizer.vocab_size, 20000)
    ordinary = [i for i in range(vocab) if i not in special]
    # Skip the first 1000 ids (bytes, punctuation, unused slots) when the vocabulary is big enough to spare them.
    if len(ordinary) >= 1000 + period:
        ordinary = ordinary[1000:]
    # The special tokens the tokenizer wraps every text in: [CLS] … [SEP] for BERT, none for GPT-2.
    wrapper = tokenizer("")["input_ids"]
    leading = [i for i in wrapper if i in (tokenizer.cls_token_id, tokenizer.bos_token_id)]
    trailing = [i for i in wrapper if i not in leading]
    period = min(period, len(ordinary), (lm.max_tokens - len(wrapper)) // 2)  # small vocabularies, short contexts
    if period < 2:
        raise InputError(f"{lm.name} has too few ordinary tokens or positions to test induction "
                         "(a random sequence repeated twice needs at least 2 tokens each time).")
    chunk = rng.choice(ordinary, size=period, replace=False).tolist()
    ids = leading + chunk + chunk + trailing
    start = len(leading)
    with torch.no_grad():
        output = lm.model(input_ids=torch.tensor([ids], device=lm.device), output_attentions=True)
    maps = torch.stack(output.attentions)[:, 0].float().cpu().numpy()
    tokens = tuple(tokenizer.convert_ids_to_tokens(ids))
    record = AttentionRecord(lm.name, "(random tokens, repeated)", tokens, tuple(ids), maps,
                             tuple(i in special for i in ids), lm.causal)
    return record, start


def find_heads(model: str | LoadedModel = "minilm", text: str = DEFAULT_TEXT, top: int = 3) -> dict[str, list[HeadPattern]]:
    """The ``top`` heads for each pattern, best first, with their scores."""
    lm = as_loaded(model)
    top = validate.whole_number(top, "top", minimum=1)
    record = attend(text, lm)
    if len(record.tokens) < 2:
        raise InputError(f"Finding head patterns needs a text of at least two tokens; {lm.name} reads "
                         f"{record.tokens!r} as one. Type a longer sentence.")
    scores = score_patterns(record)
    repeated, start = induction_record(lm)
    scores["induction"] = np.clip(induction_scores(repeated.attentions, start, (len(repeated.ids) - start) // 2), 0, 1)
    ranked = {}
    for pattern, table in scores.items():
        order = np.argsort(table, axis=None)[::-1][:top]
        ranked[pattern] = [HeadPattern(pattern, int(i // table.shape[1]), int(i % table.shape[1]), float(table.flat[i]))
                           for i in order]
    return ranked
