"""Real pretrained attention offline (MiniLM), and the hub code path on tiny models saved locally."""

import numpy as np
import pytest
import torch

from attnlab.errors import InputError, ModelNotFound, NeedsInternet
from attnlab.extraction import attend, head_internals
from attnlab.models import load
from attnlab.patterns import find_heads, induction_scores

SENTENCE = "The cat sat on the mat because it was tired."


@pytest.fixture(scope="module")
def minilm():
    return load("minilm")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, minilm):
    """A tiny BERT and a tiny GPT-2, built from configs and saved as a hub download would be."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, PreTrainedTokenizerFast

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny")
    bert = BertModel(BertConfig(vocab_size=minilm.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64, max_position_embeddings=64))
    bert.save_pretrained(folder / "bert")
    minilm.tokenizer.save_pretrained(folder / "bert")

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["the cat sat on the mat", "a dog ran in the park"] * 20, vocab_size=300,
                            special_tokens=["<|endoftext|>"])
    gpt_tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                            eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    gpt = GPT2Model(GPT2Config(vocab_size=gpt_tokenizer.vocab_size, n_embd=32, n_layer=3, n_head=2, n_positions=64))
    gpt.save_pretrained(folder / "gpt2")
    gpt_tokenizer.save_pretrained(folder / "gpt2")
    return folder


# ------------------------------------------------------------------ MiniLM, offline


def test_minilm_is_the_real_6x12_bert(minilm):
    assert (minilm.n_layers, minilm.n_heads, minilm.causal, minilm.max_tokens) == (6, 12, False, 512)
    assert {"[CLS]", "[SEP]"} <= minilm.special_tokens
    assert minilm.device in ("cpu", "cuda")


def test_record_shapes_rows_and_special_tokens(minilm):
    record = attend(SENTENCE, minilm)
    length = len(record.tokens)
    assert record.attentions.shape == (6, 12, length, length) and record.attentions.dtype == np.float32
    np.testing.assert_allclose(record.attentions.sum(-1), 1.0, atol=1e-5)
    assert record.tokens[0] == "[CLS]" and record.tokens[-1] == "[SEP]"
    assert record.special[0] and record.special[-1] and not any(record.special[1:-1])
    assert attend(SENTENCE, minilm) is record  # cached: the model does not run again


def test_previous_token_head_is_found(minilm):
    ranked = find_heads(minilm)
    best = ranked["previous token"][0]
    assert (best.layer, best.head) == (0, 2) and best.score > 0.95
    assert ranked["next token"][0].score > 0.4
    assert "token just before" in best.describe() and "Layer 0, head 2" in best.describe()
    for heads in ranked.values():
        assert all(0.0 <= h.score <= 1.0 for h in heads)
        assert [h.score for h in heads] == sorted((h.score for h in heads), reverse=True)


def test_word_merging_keeps_distributions(minilm):
    pieces = attend("Unbelievably, tokenization works.", minilm)
    words = attend("Unbelievably, tokenization works.", minilm, merge_words=True)
    assert len(words.tokens) < len(pieces.tokens)
    assert "unbelievably" in words.tokens and "tokenization" in words.tokens
    np.testing.assert_allclose(words.attentions.sum(-1), 1.0, atol=1e-5)
    w = words.tokens.index("tokenization")
    group = list(words.words[w])
    np.testing.assert_allclose(words.attentions[..., 0, w], pieces.attentions[..., 0, group].sum(-1), atol=1e-6)


def test_head_internals_reproduce_the_models_weights(minilm):
    from attnlab.attention import softmax

    inside = head_internals(SENTENCE, minilm, layer=3, head=7)
    assert inside.q.shape == inside.k.shape == inside.v.shape == (len(inside.tokens), 32)
    np.testing.assert_allclose(softmax(inside.scaled), inside.weights, atol=1e-5)
    np.testing.assert_allclose(inside.scaled, inside.scores / np.sqrt(32), atol=1e-6)


# ------------------------------------------------------------------ the hub code path


def test_tiny_bert_and_gpt2_load_by_path(tiny_models):
    bert = load(str(tiny_models / "bert"))
    gpt = load(str(tiny_models / "gpt2"))
    assert (bert.n_layers, bert.n_heads, bert.causal) == (2, 4, False)
    assert (gpt.n_layers, gpt.n_heads, gpt.causal) == (3, 2, True)
    record = attend("the cat sat on the mat", gpt)
    assert np.all(np.triu(record.attentions, k=1) == 0)  # causal: nothing above the diagonal
    np.testing.assert_allclose(record.attentions.sum(-1), 1.0, atol=1e-5)


def test_tiny_gpt2_step_view_applies_the_causal_mask(tiny_models):
    from attnlab.attention import softmax

    inside = head_internals("the cat sat on the mat", load(str(tiny_models / "gpt2")), layer=1, head=1)
    assert np.all(np.isneginf(inside.scaled[np.triu_indices(len(inside.tokens), 1)]))
    np.testing.assert_allclose(softmax(inside.scaled), inside.weights, atol=1e-5)


def test_induction_score_high_for_a_copying_head_low_for_random():
    start, period = 1, 10
    length = start + 2 * period + 1
    rng = np.random.default_rng(0)
    random = rng.random((1, 1, length, length))
    random /= random.sum(-1, keepdims=True)
    copying = np.full((1, 1, length, length), 0.0)
    copying[..., np.arange(length), 0] = 1.0  # by default, rest on the first token
    for i in range(period):  # at the second copy of token i, look at what followed its first copy
        query = start + period + i
        copying[..., query, :] = 0.0
        copying[..., query, start + i + 1] = 1.0
    assert induction_scores(copying, start, period)[0, 0] == pytest.approx(1.0)
    assert induction_scores(random, start, period)[0, 0] < 0.2


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(text, minilm):
    with pytest.raises(InputError, match="Type a sentence first"):
        attend(text, minilm)


def test_ten_thousand_characters_are_cut_with_a_note(minilm):
    record = attend("attention " * 1000, minilm)
    assert len(record.tokens) == 512
    assert any("cut to its first 512 tokens" in note for note in record.notes)


@pytest.mark.parametrize("text, expect", [
    ("I love it 🤖🎉", "[UNK]"),
    ("注意力就是你所需要的", None),
    ("שלום עולם, مرحبا بالعالم", None),
])
def test_emoji_cjk_and_right_to_left(text, expect, minilm):
    record = attend(text, minilm)
    np.testing.assert_allclose(record.attentions.sum(-1), 1.0, atol=1e-5)
    if expect:
        assert expect in record.tokens and any(expect in note for note in record.notes)


def test_control_characters_are_replaced_with_a_note(minilm):
    record = attend("bell\x07 and\x00 null", minilm)
    assert any("control character" in note for note in record.notes)


def test_html_stays_text_and_is_escaped_in_figures(minilm):
    from attnlab.figures import attention_heatmap

    record = attend('<script>alert("x")</script> <img src=x onerror=alert(1)>', minilm)
    assert "<" in record.tokens
    fig = attention_heatmap(record.head(0, 0), record.tokens)
    assert all("<" not in label for label in fig.layout.xaxis.ticktext)


def _assert_friendly(error):
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ModelNotFound, match="Did you mean 'minilm'") as caught:
        load("minilmm?")
    _assert_friendly(caught.value)


def test_hub_model_without_network_says_so():
    with pytest.raises(NeedsInternet, match="minilm' works offline") as caught:
        load("gpt2")
    _assert_friendly(caught.value)
    with pytest.raises(NeedsInternet, match="Did you mean 'bert-base-uncased'"):
        load("bert-base-uncasd")


@pytest.mark.parametrize("layer, head, message", [(6, 0, "layers 0–5"), (0, 12, "heads 0–11"), (-1, 0, "layers 0–5")])
def test_out_of_range_layer_or_head(layer, head, message, minilm):
    with pytest.raises(InputError, match=message):
        attend(SENTENCE, minilm).head(layer, head)
    with pytest.raises(InputError, match=message):
        head_internals(SENTENCE, minilm, layer, head)


def test_errors_show_as_one_line_in_ipython(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from attnlab.errors import show_friendly_errors

    shell = InteractiveShell.instance()
    try:
        show_friendly_errors()
        shell.run_cell("from attnlab.errors import InputError\nraise InputError('layer 9 does not exist')")
    finally:
        InteractiveShell.clear_instance()
    out = capsys.readouterr().out
    assert "⚠️  layer 9 does not exist" in out and "Traceback" not in out
