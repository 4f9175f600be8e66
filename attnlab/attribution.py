"""Beyond single heads (chapter 10): attention rollout, attention flow, input × gradient, and a
search for pronoun heads that stop pointing at the right word when one word changes.

- :func:`rollout`: Abnar & Zuidema's attention rollout. Each layer's heads are averaged, the
  residual connection is added as an identity term, rows are renormalised, and the layers are
  multiplied from the first to the last: ``R = Ã_L ··· Ã_1``; row i says how much of each input
  token ends up in output token i.
- :func:`attention_flow`: the same layered graph read as a network of pipes: the maximum flow
  from input token j to output token i (exact, Dinic's algorithm; T² flows, so for short texts).
- :func:`input_x_gradient`: embedding · gradient of a scalar that we define: the cosine
  similarity of the sentence's embedding (the mean of the last layer's vectors) to a target text's.
- :func:`silenced_change`: how far the output moves when heads are silenced (the test a map cannot give).
- :func:`pronoun_search`: for pairs of sentences that differ in one word, every head whose
  "it" row points at the right word in one sentence and not in the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attnlab import validate
from attnlab.attention import rows_sum_to_one
from attnlab.errors import InputError
from attnlab.extraction import attend, check_layer_head, clean_text, encode
from attnlab.models import LoadedModel, as_loaded

#: The share of the residual connection in rollout and flow, as in Abnar & Zuidema (A + I, halved).
RESIDUAL = 0.5
#: attention_flow runs T² exact maximum flows in pure Python: beyond this many tokens it takes minutes.
MAX_FLOW_TOKENS = 48


def _check_maps(attentions: object) -> np.ndarray:
    """(L, H, T, T) attention maps whose rows sum to 1, as float64; else a friendly InputError."""
    maps = validate.numeric_array(attentions, "attentions", min_dims=0)
    if maps.ndim != 4 or maps.shape[2] != maps.shape[3] or 0 in maps.shape:
        raise InputError(f"attentions must be (layers, heads, tokens, tokens) with at least one of each, "
                         f"got shape {maps.shape}: use record.attentions from attnlab.extraction.attend.")
    if not rows_sum_to_one(maps, atol=1e-4):
        raise InputError("each row of every attention map must be a distribution summing to 1 "
                         "(did you pass scores before the softmax?)")
    return maps


def _check_residual(residual: object) -> float:
    if isinstance(residual, bool) or not isinstance(residual, (int, float, np.floating, np.integer)) \
            or not 0 <= float(residual) <= 1:
        raise InputError(f"residual must be a number from 0 to 1 (the share of the identity term), got {residual!r}.")
    return float(residual)


def mixed_layers(attentions: np.ndarray, residual: float = RESIDUAL) -> np.ndarray:
    """Per layer, the heads' mean with the residual identity added, rows renormalised: (L, T, T)."""
    maps = _check_maps(attentions)
    residual = _check_residual(residual)
    mean = maps.mean(axis=1)  # (L, T, T): every head counts the same
    mixed = residual * np.eye(maps.shape[-1]) + (1 - residual) * mean
    return mixed / mixed.sum(axis=-1, keepdims=True)


def rollout(attentions: np.ndarray, residual: float = RESIDUAL) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): R = Ã_L ··· Ã_1, (T, T); every row sums to 1."""
    layers = mixed_layers(attentions, residual)
    result = np.eye(layers.shape[-1])  # (T, T): before layer 1, each token is only itself
    for layer in layers:  # first layer first: the newest layer multiplies from the left
        result = layer @ result
    return result


def attention_flow(attentions: np.ndarray, residual: float = RESIDUAL) -> np.ndarray:
    """Attention flow (Abnar & Zuidema 2020): F[i, j] is the maximum flow from input token j to output
    token i through the layers, each edge's capacity its weight in ``mixed_layers``; (T, T), not normalised."""
    layers = mixed_layers(attentions, residual)
    length = layers.shape[-1]
    if length > MAX_FLOW_TOKENS:
        raise InputError(f"attention_flow computes {length}² maximum flows one at a time, which takes minutes for "
                         f"{length} tokens; it accepts at most {MAX_FLOW_TOKENS}. Use a shorter text, or rollout(), "
                         "a few matrix products, for long ones.")
    return np.array([[max_flow(layers, j, i) for j in range(length)] for i in range(length)])


def max_flow(layers: np.ndarray, source: int, sink: int, eps: float = 1e-12) -> float:
    """Maximum flow from token ``source`` of the input to token ``sink`` of the output (Dinic's algorithm).

    ``layers`` (L, T, T): level l's token j feeds level l + 1's token i with capacity layers[l, i, j].
    Node (l, t) is number l·T + t. ``ahead[u][k]`` is the capacity left on the edge from u to token k
    of the next level, ``behind[u][k]`` on the reverse edge to token k of the level before (the flow
    already sent that way, which may be sent back).
    """
    n_layers, length, _ = layers.shape
    n_nodes = (n_layers + 1) * length
    ahead = [layers[u // length][:, u % length].tolist() if u < n_layers * length else None for u in range(n_nodes)]
    behind = [[0.0] * length if u >= length else None for u in range(n_nodes)]
    goal = n_layers * length + sink

    def neighbours(u: int):
        """(capacities left, first node of their level) for the edges out of u: forwards, then back."""
        level = u // length
        return [(side, base) for side, base in ((ahead[u], (level + 1) * length), (behind[u], (level - 1) * length))
                if side is not None]

    def push(u: int, budget: float) -> float:
        """Send up to ``budget`` from u towards the sink along edges that go one BFS level further."""
        if u == goal:
            return budget
        for side, base in neighbours(u):
            for k in range(length):
                v = base + k
                if side[k] > eps and depth[v] == depth[u] + 1 and not dead[v]:
                    sent = push(v, min(budget, side[k]))
                    if sent > 0:
                        side[k] -= sent  # and the reverse edge gains what was sent
                        (behind[v] if v > u else ahead[v])[u % length] += sent
                        return sent
        dead[u] = True  # nothing more gets through u in this phase
        return 0.0

    total = 0.0
    while True:
        depth, queue = [-1] * n_nodes, [source]  # breadth-first levels over edges with capacity left
        depth[source] = 0
        for u in queue:
            for side, base in neighbours(u):
                for k in range(length):
                    if side[k] > eps and depth[base + k] < 0:
                        depth[base + k] = depth[u] + 1
                        queue.append(base + k)
        if depth[goal] < 0:
            return total
        dead = [False] * n_nodes
        while (sent := push(source, float("inf"))) > 0:
            total += sent


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum, so that it can be shown as a distribution."""
    matrix = validate.numeric_array(matrix, "matrix", min_dims=2)
    sums = matrix.sum(axis=-1, keepdims=True)
    if np.any(sums <= 0):
        raise InputError("a row sums to 0 or less: there is nothing to normalise.")
    return matrix / sums


# ------------------------------------------------------------------ input × gradient


@dataclass(frozen=True)
class Attribution:
    """One relevance per token for one scalar of the model's output."""

    tokens: tuple[str, ...]
    relevance: np.ndarray  # (T,): embedding · gradient, summed over the embedding's numbers
    value: float  # the scalar itself


def _forward(lm: LoadedModel, text: str):
    """The encoding and tokens of ``text``, ready for the model."""
    text, notes = clean_text(text)
    return encode(text, lm, notes)


def sentence_embedding(text: str, model: str | LoadedModel = "minilm"):
    """The mean of the last layer's vectors over the tokens: MiniLM's sentence embedding, (C,)."""
    import torch

    lm = as_loaded(model)
    encoding, _ = _forward(lm, text)
    with torch.no_grad():
        return lm.model(**encoding.to(lm.device)).last_hidden_state[0].mean(dim=0)


def input_x_gradient(text: str, model: str | LoadedModel = "minilm", target: str = "") -> Attribution:
    """Input × gradient of s = cos(embedding(text), embedding(target)) with respect to the token embeddings.

    relevance[j] = e_j · ∂s/∂e_j, with e_j the model's input embedding of token j (before positions
    are added): the rate of change of s as token j's embedding is scaled up, d s(α e_j) / dα at α = 1
    (to first order, also s(e) − s(e with e_j set to 0)).
    """
    import torch

    lm = as_loaded(model)
    if not isinstance(target, str) or not target.strip():
        raise InputError("input_x_gradient needs a target text to compare with, such as target='a sleepy animal'.")
    goal = sentence_embedding(target, lm)  # (C,), fixed
    encoding, tokens = _forward(lm, text)
    encoding = encoding.to(lm.device)
    embed = lm.model.get_input_embeddings()
    inputs = embed(encoding["input_ids"]).detach().requires_grad_(True)  # (1, T, C)
    others = {key: value for key, value in encoding.items() if key != "input_ids"}
    hidden = lm.model(inputs_embeds=inputs, **others).last_hidden_state  # (1, T, C)
    value = torch.nn.functional.cosine_similarity(hidden[0].mean(dim=0), goal, dim=0)
    (gradient,) = torch.autograd.grad(value, inputs)
    relevance = (inputs * gradient).sum(dim=-1)[0]  # (T,)
    return Attribution(tuple(tokens), relevance.detach().double().cpu().numpy(), value.item())


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``; tied values share their mean rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # ties: the mean of their ranks
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the two lists' ranks."""
    a, b = validate.numeric_array(a, "a"), validate.numeric_array(b, "b")
    if a.shape != b.shape or a.ndim != 1 or len(a) < 3:
        raise InputError(f"spearman needs two lists of the same length, at least 3 each; got {a.shape} and {b.shape}.")
    rank_a, rank_b = ranks(a), ranks(b)
    if rank_a.std() == 0 or rank_b.std() == 0:
        raise InputError("spearman is undefined when every value of a list is the same.")
    return float(np.corrcoef(rank_a, rank_b)[0, 1])


# ------------------------------------------------------------------ pronoun heads


@dataclass(frozen=True)
class PronounPair:
    """Two sentences that differ in one word, the pronoun, and the word it stands for in each."""

    first: str
    first_antecedent: str
    second: str
    second_antecedent: str
    pronoun: str = "it"


@dataclass(frozen=True)
class PronounHead:
    """One head on one ordered pair: where its pronoun row points in each sentence."""

    pair: int
    flipped: bool  # True: the pair's second sentence is "A", the first is "B"
    layer: int
    head: int
    share_a: float  # weight on A's antecedent, as a share of the weight the pronoun gives to words
    top_a: str  # the word with the most weight in A
    share_b: float  # the same in B, for B's antecedent
    top_b: str

    @property
    def resolves_a(self) -> bool:
        return self.top_a == "right"

    @property
    def resolves_b(self) -> bool:
        return self.top_b == "right"


def word_row(text: str, lm: LoadedModel, pronoun: str):
    """Word-level record of ``text`` and, per layer and head, the pronoun's weights on the words (L, H, W)."""
    record = attend(text, lm, merge_words=True)
    words = [w.lower().lstrip("Ġ▁ ") for w in record.tokens]  # GPT-2 / RoBERTa mark a space with "Ġ"
    pronoun = pronoun.lower()
    if words.count(pronoun) != 1:
        shown = " ".join(record.tokens[:12]) + (" …" if len(record.tokens) > 12 else "")
        if len(record.tokens) >= 0.8 * len(text):
            why = f"{lm.name} reads characters, not words, so there is no word to point at"
        elif words.count(pronoun) > 1:
            why = f"it appears {words.count(pronoun)} times; the search needs one"
        else:
            why = "it is not one of the words"
        raise InputError(f"{text!r} must contain the pronoun {pronoun!r} exactly once as a word ({why}); "
                         f"{lm.name} splits it into: {shown}")
    return record, words, record.attentions[:, :, words.index(pronoun), :]


def pronoun_search(pairs: Sequence[PronounPair], model: str | LoadedModel = "minilm") -> list[PronounHead]:
    """Every head on every pair, in both directions. A head points at a word when that word has the
    most weight of the pronoun's row among the sentence's words (special tokens, punctuation and the
    pronoun itself left out); ``top_a`` is "right", "other" (the other candidate) or the word itself."""
    lm = as_loaded(model)
    found = []
    for index, pair in enumerate(pairs):
        if not isinstance(pair, PronounPair):
            raise InputError(f"pairs must be PronounPair(first, first_antecedent, second, second_antecedent), "
                             f"not {type(pair).__name__}.")
        sides = []
        for text, right in ((pair.first, pair.first_antecedent), (pair.second, pair.second_antecedent)):
            record, words, rows = word_row(text, lm, pair.pronoun)
            if right.lower() not in words:
                raise InputError(f"the antecedent {right!r} is not a word of {text!r}.")
            sides.append((record, words, rows, right.lower()))
        (_, words_1, _, _), (_, words_2, _, _) = sides
        pronoun = pair.pronoun.lower()
        if len(words_1) != len(words_2) or sum(a != b for a, b in zip(words_1, words_2)) != 1:
            raise InputError(f"pair {index}: the two sentences must differ in exactly one word.")
        candidates = {sides[0][3], sides[1][3]}
        for flipped in (False, True):
            (rec_a, w_a, rows_a, right_a), (rec_b, w_b, rows_b, right_b) = sides[::-1] if flipped else sides
            for layer in range(lm.n_layers):
                for head in range(lm.n_heads):
                    share_a, top_a = _points_to(rec_a, w_a, rows_a[layer, head], right_a, candidates, pronoun)
                    share_b, top_b = _points_to(rec_b, w_b, rows_b[layer, head], right_b, candidates, pronoun)
                    found.append(PronounHead(index, flipped, layer, head, share_a, top_a, share_b, top_b))
    return found


def _points_to(record, words: list[str], row: np.ndarray, right: str, candidates: set[str],
               pronoun: str) -> tuple[float, str]:
    """(share of the word weight on ``right``, what the largest word weight is on)."""
    ordinary = [i for i, w in enumerate(words)
                if not record.special[i] and w != pronoun and any(c.isalnum() for c in w)]
    weights = row[ordinary]
    best = words[ordinary[int(np.argmax(weights))]]
    share = float(row[words.index(right)] / weights.sum())
    return share, "right" if best == right else ("other" if best in candidates else best)


def silenced_change(text: str, model: str | LoadedModel, layer: int, heads: Sequence[int],
                    position: int | None = None) -> float:
    """1 − cosine between the model's last-layer vector with ``heads`` of ``layer`` silenced and without:
    of token ``position``, or of the sentence embedding (the mean over tokens) when None. 0: no change."""
    import torch

    from attnlab.heads import _layer_modules, silencer

    lm = as_loaded(model)
    *_, out_proj = _layer_modules(lm, layer)  # refuses a layer or model it cannot silence
    heads = [heads] if isinstance(heads, (int, np.integer)) else list(heads)
    for head in heads:
        check_layer_head(layer, head, lm.n_layers, lm.n_heads, lm.name)
    encoding, tokens = _forward(lm, text)
    encoding = encoding.to(lm.device)
    if position is not None and not (isinstance(position, (int, np.integer)) and 0 <= position < len(tokens)):
        raise InputError(f"position must be a token index from 0 to {len(tokens) - 1}, got {position!r}.")
    silence = silencer(heads, out_proj.in_features // lm.n_heads)

    with torch.no_grad():
        before = lm.model(**encoding).last_hidden_state[0]  # (T, C)
        hook = out_proj.register_forward_pre_hook(silence)
        try:
            after = lm.model(**encoding).last_hidden_state[0]
        finally:
            hook.remove()
    pick = (lambda h: h.mean(dim=0)) if position is None else (lambda h: h[position])
    return max(0.0, float(1 - torch.nn.functional.cosine_similarity(pick(before), pick(after), dim=0)))
