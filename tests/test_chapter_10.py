"""Chapter 10 (attention in pretrained models): rollout, flow, input × gradient, the pronoun search,
its figures and its checkers."""

import numpy as np
import pytest
import torch

from types import SimpleNamespace

import scipy.sparse as scipy_graph
from scipy.sparse.csgraph import maximum_flow

from attnlab.attribution import (MAX_FLOW_TOKENS, Attribution, PronounPair, _points_to, attention_flow,
                                 input_x_gradient, max_flow, mixed_layers, normalise_rows, pronoun_search, ranks,
                                 rollout, silenced_change, spearman, word_row)
from attnlab.checkers import check_punctuation_score, check_rollout
from attnlab.checkers.pretrained import TOKENS, reference_punctuation
from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW
from attnlab.figures_pretrained import best_heads_chart, pattern_gallery, pronoun_chart, relevance_chart


def random_maps(seed=0, layers=3, heads=2, length=5):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(length), size=(layers, heads, length))


# ------------------------------------------------------------------ rollout and flow


def test_rollout_equals_a_hand_computation():
    a1 = np.array([[1.0, 0.0], [0.5, 0.5]])
    a2 = np.array([[0.2, 0.8], [0.0, 1.0]])
    maps = np.stack([a1, a2])[:, None]  # (L=2, H=1, 2, 2)
    # 0.5·A + 0.5·I: [[1, 0], [.25, .75]] then [[.6, .4], [0, 1]]; the later layer on the left.
    assert np.allclose(rollout(maps), [[0.7, 0.3], [0.25, 0.75]])
    assert np.allclose(rollout(maps, residual=0.0), a2 @ a1)
    assert np.allclose(rollout(maps, residual=1.0), np.eye(2))


def test_rollout_rows_sum_to_one_and_heads_are_averaged():
    maps = random_maps()
    result = rollout(maps)
    assert result.shape == (5, 5) and np.allclose(result.sum(axis=-1), 1)
    averaged = np.repeat(maps.mean(axis=1, keepdims=True), 4, axis=1)
    assert np.allclose(rollout(averaged), result)
    assert np.allclose(mixed_layers(maps).sum(axis=-1), 1)


def test_flow_of_one_and_two_layers_equals_a_hand_computation():
    maps = random_maps(1, layers=1, heads=1, length=4)
    assert np.allclose(attention_flow(maps), mixed_layers(maps)[0], atol=1e-9)
    maps = random_maps(2, layers=2, heads=2, length=4)
    first, second = mixed_layers(maps)
    # two levels: the paths j → k → i share no edge, so the flow is Σ_k min(first[k, j], second[i, k])
    hand = np.minimum(first.T[:, None, :], second[None, :, :]).sum(axis=-1).T  # (i, j)
    assert np.allclose(attention_flow(maps), hand, atol=1e-9)


def _scipy_flow(layers, source, sink):
    """The same maximum flow by scipy (integer capacities, scaled by 1e7): a reference, not a dependency."""
    n_layers, length, _ = layers.shape
    rows, cols, caps = [], [], []
    for level, weights in enumerate(layers):
        query, key = np.nonzero(weights > 0)
        rows.append(level * length + key)
        cols.append((level + 1) * length + query)
        caps.append(np.rint(weights[query, key] * 1e7))
    size = (n_layers + 1) * length
    edges = (np.concatenate(rows), np.concatenate(cols))
    graph = scipy_graph.csr_matrix((np.concatenate(caps).astype(np.int64), edges), shape=(size, size))
    return maximum_flow(graph, source, n_layers * length + sink).flow_value / 1e7


def test_flow_matches_scipy_max_flow():
    layers = mixed_layers(random_maps(3, layers=3, heads=2, length=5))
    for source, sink in [(0, 0), (1, 3), (4, 2)]:
        assert max_flow(layers, source, sink) == pytest.approx(_scipy_flow(layers, source, sink), abs=1e-5)


def test_flow_of_causal_maps_matches_scipy_and_never_flows_back():
    rng = np.random.default_rng(7)
    maps = np.tril(rng.random((3, 2, 5, 5)) + 0.05)  # a causal model: nothing above the diagonal
    maps /= maps.sum(axis=-1, keepdims=True)
    layers, flow = mixed_layers(maps), attention_flow(maps)
    assert np.allclose(np.triu(flow, k=1), 0)  # output i receives nothing from a later input j
    for source, sink in [(0, 4), (2, 3), (1, 1)]:
        assert flow[sink, source] == pytest.approx(_scipy_flow(layers, source, sink), abs=1e-5)


def test_flow_refuses_long_texts():
    length = MAX_FLOW_TOKENS + 1
    with pytest.raises(InputError, match="rollout"):
        attention_flow(np.full((1, 1, length, length), 1 / length))


def test_flow_is_bounded_and_normalised_rows_sum_to_one():
    flow = attention_flow(random_maps(4))
    assert np.all(flow > 0) and np.all(flow <= 1 + 1e-9)  # every node receives capacity 1 in all
    assert np.allclose(normalise_rows(flow).sum(axis=-1), 1)


def test_spearman_and_ranks():
    assert ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    import scipy.stats as stats
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 12).astype(float), rng.normal(size=12)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


@pytest.mark.parametrize("bad, fragment", [
    (np.ones((2, 2, 3)), "layers, heads, tokens, tokens"),
    (np.ones((1, 1, 2, 2)), "sum"),
    ("maps", "array of numbers"),
    (np.full((1, 1, 2, 2), np.nan), "NaN"),
])
def test_rollout_and_flow_refuse_bad_maps(bad, fragment):
    for function in (rollout, attention_flow):
        with pytest.raises(InputError, match=fragment):
            function(bad)


def test_bad_residual_and_rows_are_refused():
    with pytest.raises(InputError, match="residual"):
        rollout(random_maps(), residual=1.5)
    with pytest.raises(InputError, match="residual"):
        rollout(random_maps(), residual=True)
    with pytest.raises(InputError, match="sums to 0"):
        normalise_rows(np.zeros((2, 2)))
    with pytest.raises(InputError, match="same length"):
        spearman([1, 2, 3], [1, 2])


# ------------------------------------------------------------------ input × gradient


@pytest.fixture(scope="module")
def tiny_bert():
    """A tiny random BERT with MiniLM's tokenizer, in float64, as a LoadedModel."""
    from transformers import BertConfig, BertModel

    from attnlab.models import LoadedModel, load

    tokenizer = load("minilm").tokenizer
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, attn_implementation="eager")
    model = BertModel(config).double().eval()
    return LoadedModel(name="tiny-bert", model=model, tokenizer=tokenizer, device="cpu", causal=False, n_layers=2,
                       n_heads=2, max_tokens=64)


def test_input_x_gradient_equals_a_finite_difference(tiny_bert):
    text, target = "the cat sat", "a sleepy animal"
    got = input_x_gradient(text, tiny_bert, target)
    assert isinstance(got, Attribution) and got.tokens == ("[CLS]", "the", "cat", "sat", "[SEP]")
    model, tokenizer = tiny_bert.model, tiny_bert.tokenizer
    with torch.no_grad():
        goal = model(**tokenizer(target, return_tensors="pt")).last_hidden_state[0].mean(0)
        encoding = tokenizer(text, return_tensors="pt")
        embeds = model.get_input_embeddings()(encoding["input_ids"])
        others = {k: v for k, v in encoding.items() if k != "input_ids"}

        def similarity(scale_token, scale):
            scaled = embeds.clone()
            scaled[0, scale_token] *= scale
            pooled = model(inputs_embeds=scaled, **others).last_hidden_state[0].mean(0)
            return torch.nn.functional.cosine_similarity(pooled, goal, dim=0).item()

        assert got.value == pytest.approx(similarity(0, 1.0), abs=1e-12)
        eps = 1e-5
        for j in range(len(got.tokens)):
            finite = (similarity(j, 1 + eps) - similarity(j, 1 - eps)) / (2 * eps)
            assert got.relevance[j] == pytest.approx(finite, abs=1e-7)
    assert np.any(np.abs(got.relevance) > 1e-4)  # not trivially zero


def test_input_x_gradient_of_a_causal_gpt2_equals_a_finite_difference():
    from transformers import GPT2Config, GPT2Model

    from attnlab.models import LoadedModel, load

    tokenizer = load("minigpt").tokenizer
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=64)
    model = GPT2Model(config).double().eval()
    lm = LoadedModel(name="tiny-gpt2", model=model, tokenizer=tokenizer, device="cpu", causal=True, n_layers=2,
                     n_heads=2, max_tokens=64)
    got = input_x_gradient("abc d", lm, "cab")
    with torch.no_grad():
        goal = model(**tokenizer("cab", return_tensors="pt")).last_hidden_state[0].mean(0)
        embeds = model.get_input_embeddings()(tokenizer("abc d", return_tensors="pt")["input_ids"])

        def similarity(j, scale):
            scaled = embeds.clone()
            scaled[0, j] *= scale
            pooled = model(inputs_embeds=scaled).last_hidden_state[0].mean(0)
            return torch.nn.functional.cosine_similarity(pooled, goal, dim=0).item()

        for j in range(len(got.tokens)):
            finite = (similarity(j, 1 + 1e-5) - similarity(j, 1 - 1e-5)) / 2e-5
            assert got.relevance[j] == pytest.approx(finite, abs=1e-7)
    assert np.any(np.abs(got.relevance) > 1e-4)


def test_input_x_gradient_refuses_a_missing_target(tiny_bert):
    with pytest.raises(InputError, match="target"):
        input_x_gradient("the cat sat", tiny_bert, "")
    with pytest.raises(InputError):
        input_x_gradient("   ", tiny_bert, "a cat")


# ------------------------------------------------------------------ the pronoun search (MiniLM)


PAIR = PronounPair("The cat caught the mouse because it was fast.", "cat",
                   "The cat caught the mouse because it was slow.", "mouse")


def test_pronoun_search_covers_every_head_both_ways():
    found = pronoun_search([PAIR], "minilm")
    assert len(found) == 2 * 6 * 12
    assert {f.flipped for f in found} == {False, True}
    for f in found:
        assert 0 <= f.share_a <= 1 and 0 <= f.share_b <= 1
        assert f.resolves_a == (f.top_a == "right")
    forward = {(f.layer, f.head): f for f in found if not f.flipped}
    backward = {(f.layer, f.head): f for f in found if f.flipped}
    for place, f in forward.items():  # flipping swaps A and B
        assert backward[place].share_a == pytest.approx(f.share_b)


@pytest.mark.parametrize("pair, fragment", [
    (PronounPair("The cat caught the mouse because it was fast.", "cat",
                 "The dog caught the mouse because it was slow.", "mouse"), "exactly one word"),
    (PronounPair("The cat caught the mouse.", "cat", "The cat caught the rat.", "rat"), "pronoun"),
    (PronounPair("The cat caught the mouse because it was fast.", "dog",
                 "The cat caught the mouse because it was slow.", "mouse"), "not a word"),
    (("a", "b"), "PronounPair"),
])
def test_pronoun_search_refuses_bad_pairs(pair, fragment):
    with pytest.raises(InputError, match=fragment):
        pronoun_search([pair], "minilm")


def test_points_to_on_hand_made_rows():
    words = ["[CLS]", "the", "cat", "chased", "the", "dog", "because", "it", "was", "fast", ".", "[SEP]"]
    record = SimpleNamespace(special=[w in ("[CLS]", "[SEP]") for w in words])
    row = np.zeros(len(words))
    row[[0, 2, 5, 7, 10]] = [0.4, 0.3, 0.1, 0.15, 0.05]  # most on [CLS], "it" and "." : all left out
    share, top = _points_to(record, words, row, "cat", {"cat", "dog"}, "it")
    assert top == "right" and share == pytest.approx(0.3 / 0.4)
    share, top = _points_to(record, words, row, "dog", {"cat", "dog"}, "it")
    assert top == "other" and share == pytest.approx(0.1 / 0.4)
    row[8] = 0.5  # now "was" has the most of the words
    assert _points_to(record, words, row, "cat", {"cat", "dog"}, "it")[1] == "was"


def test_word_row_accepts_a_capital_pronoun_and_explains_refusals():
    record, words, rows = word_row("The cat sat because It was tired.", load_minilm(), "It")
    assert rows.shape[:2] == (6, 12) and "it" in words
    assert np.allclose(rows.sum(axis=-1), 1, atol=1e-4)
    with pytest.raises(InputError, match="2 times"):
        word_row("It is what it is.", load_minilm(), "it")
    with pytest.raises(InputError, match="not one of the words"):
        word_row("The cat sat.", load_minilm(), "it")


def load_minilm():
    from attnlab.models import load

    return load("minilm")


def test_silenced_change_is_zero_for_no_head_and_refuses_bad_input():
    text = "The cat sat on the mat because it was tired."
    assert silenced_change(text, "minilm", 2, []) == pytest.approx(0, abs=1e-6)
    one = silenced_change(text, "minilm", 2, [3], position=7)
    assert 0 < one < 1
    assert silenced_change(text, "minilm", 2, list(range(12))) > silenced_change(text, "minilm", 2, [3])
    with pytest.raises(InputError):
        silenced_change(text, "minilm", 9, [0])
    with pytest.raises(InputError, match="position"):
        silenced_change(text, "minilm", 2, [0], position=99)
    with pytest.raises(InputError, match="BERT-style"):
        silenced_change("ROMEO: hi", "minigpt", 0, [0])


def test_rollout_of_minilm_rows_sum_to_one():
    from attnlab.extraction import attend

    record = attend("The cat sat on the mat.", "minilm")
    assert np.allclose(rollout(record.attentions).sum(axis=-1), 1)
    assert np.allclose(normalise_rows(attention_flow(record.attentions)).sum(axis=-1), 1)


# ------------------------------------------------------------------ checkers


def reference_rollout(attentions, residual=0.5):
    return rollout(attentions, residual)


def _layers(attentions, residual=0.5):
    mean = attentions.mean(axis=1)
    return residual * np.eye(attentions.shape[-1]) + (1 - residual) * mean


WRONG_ROLLOUTS = {
    "reversed": (lambda a, r=0.5: np.linalg.multi_dot(list(_layers(a, r))), "reversed"),
    "no residual": (lambda a, r=0.5: np.linalg.multi_dot(list(a.mean(axis=1)[::-1])), "residual connection"),
    "A + I, no renormalising": (
        lambda a, r=0.5: np.linalg.multi_dot(list((a.mean(axis=1) + np.eye(a.shape[-1]))[::-1])), "2^layers"),
    "element by element": (lambda a, r=0.5: np.prod(_layers(a, r), axis=0), "MATRICES"),
    "last layer only": (lambda a, r=0.5: _layers(a, r)[-1], "every layer"),
    "fixed residual": (lambda a, r=0.5: rollout(a, 0.5), "residual="),
    "one per layer": (lambda a, r=0.5: _layers(a, r), "not one per layer"),
    "forgot return": (lambda a, r=0.5: None, "return"),
}


def test_check_rollout_accepts_the_reference():
    assert check_rollout(reference_rollout, verbose=False)


@pytest.mark.parametrize("name", list(WRONG_ROLLOUTS))
def test_check_rollout_names_each_mistake(name):
    wrong, fragment = WRONG_ROLLOUTS[name]
    result = check_rollout(wrong, verbose=False)
    assert not result and fragment in result.hint, result.message()


def test_check_rollout_says_not_written_yet():
    def unwritten(attentions, residual=0.5):
        raise NotImplementedError

    assert "not written yet" in check_rollout(unwritten, verbose=False).message()
    with pytest.raises(InputError):
        check_rollout(rollout(random_maps()))


def _punct(tokens):
    return np.array([not any(c.isalnum() for c in t) for t in tokens])


WRONG_SCORES = {
    "sum over queries": (lambda a, t: a[..., _punct(t), :].sum(axis=-2).mean(axis=-1), "QUERIES"),
    "punctuation as queries": (lambda a, t: a[..., _punct(t), :].sum(axis=-1).mean(axis=-1), "rows OF"),
    "not averaged": (lambda a, t: a[..., _punct(t)].sum(axis=-1).sum(axis=-1), "AVERAGE"),
    "mean over keys": (lambda a, t: a[..., _punct(t)].mean(axis=-1).mean(axis=-1), "SUM over"),
    "brackets count": (lambda a, t: reference_punctuation(a, [t_ if not t_.startswith("[") else "," for t_ in t]),
                       "[CLS] and [SEP]"),
    "fixed list": (lambda a, t: a[..., [i for i, x in enumerate(t) if x in ",.!?"]].sum(-1).mean(-1), "fixed list"),
    "per query": (lambda a, t: a[..., _punct(t)].sum(axis=-1), "not per query"),
    "nan when none": (lambda a, t: a[..., _punct(t)].sum(-1).mean(-1) / _punct(t).any(), "NaN"),
}


def test_check_punctuation_accepts_the_reference():
    assert check_punctuation_score(lambda a, t: reference_punctuation(a, t), verbose=False)


@pytest.mark.parametrize("name", list(WRONG_SCORES))
def test_check_punctuation_names_each_mistake(name):
    wrong, fragment = WRONG_SCORES[name]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = check_punctuation_score(wrong, verbose=False)
    assert not result and fragment in result.hint, result.message()


def test_punctuation_tokens_are_the_intended_ones():
    assert [t for t in TOKENS if _punct([t])[0]] == [",", "'", "..."]


def test_punctuation_strips_the_space_marker_and_names_string_punctuation():
    import string

    from attnlab.checkers.pretrained import is_punctuation

    assert is_punctuation("Ġ(") and is_punctuation("...") and not is_punctuation("Ġthe")

    def with_string_punctuation(attentions, tokens):
        keys = np.array([t in string.punctuation for t in tokens])
        return attentions[..., keys].sum(axis=-1).mean(axis=-1)

    result = check_punctuation_score(with_string_punctuation, verbose=False)
    assert not result and "string.punctuation" in result.hint, result.message()


# ------------------------------------------------------------------ figures


def test_pattern_gallery_follows_the_conventions():
    means = {"previous token": np.full((6, 12), 0.5), "broad": np.zeros((6, 12))}
    spreads = {k: np.full((6, 12), 0.1) for k in means}
    fig = pattern_gallery(means, spreads, 10)
    assert len(fig.layout.meta["alt"]) > 20 and "10 sentences" in fig.layout.meta["alt"]
    assert {t.type for t in fig.data} == {"heatmap"}
    assert len(fig.layout.updatemenus[0].buttons) == 2
    with pytest.raises(InputError):
        pattern_gallery(means, {"broad": spreads["broad"]}, 10)


def test_best_heads_chart_and_relevance_chart():
    fig = best_heads_chart(["previous · L0 H2", "broad · L0 H0"], [[0.9, 1.0], [0.5, 0.6, 0.7]])
    assert {t.type for t in fig.data} == {"bar", "scatter"}
    assert fig.layout.legend.orientation == LEGEND_BELOW["orientation"]
    shares = {"rollout": [0.5, 0.25, 0.25], "gradient": [0.2, 0.3, 0.5]}
    fig = relevance_chart({"one": (["[CLS]", "<b>cat</b>", "[SEP]"], shares), "two": (["a", "b", "c"], shares)})
    assert len(fig.data) == 4 and [t.visible for t in fig.data] == [True, True, False, False]
    assert "&lt;b&gt;" in fig.layout.xaxis.ticktext[1]
    with pytest.raises(InputError, match="summing to 1"):
        relevance_chart({"one": (["a", "b", "c"], {"rollout": [0.5, 0.5, 0.5]})})


def test_pronoun_chart_checks_its_rows():
    fig = pronoun_chart(["the", "cat", "big / small"], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], ["A", "B"])
    assert len(fig.data) == 2 and len(fig.layout.meta["alt"]) > 20
    with pytest.raises(InputError, match="sum to 1"):
        pronoun_chart(["a", "b"], [0.5, 0.6], [0.5, 0.5], ["A", "B"])
