"""Bad input at every public entry point gets the course's own error, with a message that says
what was wrong; and property-based tests of softmax and attention (hypothesis).

Device-sensitive tests run on every device PyTorch sees, so that a GPU run catches mixed-device bugs.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from attnlab import attention as att
from attnlab.blocks import DecoderBlock, EncoderDecoder, FeedForward, MultiHeadAttention, TransformerBlock
from attnlab.checkers import check_attention, check_softmax
from attnlab.errors import AttnlabError, InputError, ModelNotFound, NeedsInternet
from attnlab.extraction import AttentionRecord, attend, clean_text
from attnlab.figures import attention_heatmap, chain_vs_web, head_view, model_view
from attnlab.gpt import GPT, GPTConfig, next_token_probabilities
from attnlab.models import as_loaded, load
from attnlab.patterns import find_heads, induction_record
from attnlab.positional import (LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding,
                                sinusoidal_encoding)
from attnlab.static_explorer import explorer_payload
from attnlab.vectors import cosine_similarity, embedding_table, nearest_neighbours, project_2d, token_id
from tests.test_models import minilm, tiny_models  # noqa: F401 (fixtures, shared with test_models)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CUDA = torch.cuda.is_available()


def _t(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype)


def _np(*shape):
    return np.random.default_rng(0).normal(size=shape)


_gpt = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16))
_mha = MultiHeadAttention(16, 4)
_ids = torch.zeros(1, 4, dtype=torch.long)
_record = AttentionRecord("toy", "a b", ("a", "b"), (0, 1), np.full((1, 1, 2, 2), 0.5, dtype=np.float32),
                          (False, False), False)

# (id, call, error type, fragment of the message). No model is needed for these.
CASES = [
    # softmax (NumPy)
    ("softmax-temp-zero", lambda: att.softmax(_np(2, 3), temperature=0), InputError, "positive"),
    ("softmax-temp-nan", lambda: att.softmax(_np(2, 3), temperature=float("nan")), InputError, "finite"),
    ("softmax-temp-inf", lambda: att.softmax(_np(2, 3), temperature=float("inf")), InputError, "finite"),
    ("softmax-temp-str", lambda: att.softmax(_np(2, 3), temperature="1"), InputError, "positive number"),
    ("softmax-nan-scores", lambda: att.softmax(np.array([1.0, np.nan])), InputError, "NaN"),
    ("softmax-text", lambda: att.softmax("abc"), InputError, "array of numbers"),
    ("softmax-none", lambda: att.softmax(None), InputError, "array of numbers"),
    ("softmax-ragged", lambda: att.softmax([[1, 2], [3]]), InputError, "equal length"),
    ("softmax-bad-axis", lambda: att.softmax(_np(2, 3), axis=2), InputError, "axis 2 does not exist"),
    ("softmax-empty", lambda: att.softmax(np.zeros((2, 0))), InputError, "no entries"),
    ("softmax-scalar", lambda: att.softmax(3.0), InputError, "at least 1 dimension"),
    # attention (NumPy)
    ("np-attn-dk", lambda: att.scaled_dot_product_attention_np(_np(3, 4), _np(3, 5), _np(3, 4)), InputError, "same last size d_k"),
    ("np-attn-lengths", lambda: att.scaled_dot_product_attention_np(_np(3, 4), _np(3, 4), _np(2, 4)), InputError, "one row per key"),
    ("np-attn-1d-query", lambda: att.scaled_dot_product_attention_np(_np(4), _np(3, 4), _np(3, 4)), InputError, "at least 2 dimension"),
    ("np-attn-nan", lambda: att.scaled_dot_product_attention_np(np.full((2, 2), np.nan), _np(2, 2), _np(2, 2)), InputError, "NaN"),
    ("np-attn-int-mask", lambda: att.scaled_dot_product_attention_np(_np(2, 2), _np(2, 2), _np(2, 2), np.ones((2, 2), int)), InputError, "boolean"),
    ("np-attn-mask-shape", lambda: att.scaled_dot_product_attention_np(_np(2, 2), _np(3, 2), _np(3, 2), np.ones((2, 2), bool)), InputError, "does not fit"),
    ("np-attn-none", lambda: att.scaled_dot_product_attention_np(None, _np(2, 2), _np(2, 2)), InputError, "q must be"),
    ("causal-np-negative", lambda: att.causal_mask_np(-1), InputError, "at least 0"),
    ("causal-np-float", lambda: att.causal_mask_np(2.5), InputError, "whole number"),
    ("self-attn-3d", lambda: att.self_attention_weights(_np(2, 3, 4)), InputError, "(tokens, features)"),
    ("mha-np-heads", lambda: att.multi_head_attention_np(_np(3, 6), *[_np(6, 6)] * 4, n_heads=4), InputError, "not divisible"),
    ("mha-np-zero-heads", lambda: att.multi_head_attention_np(_np(3, 6), *[_np(6, 6)] * 4, n_heads=0), InputError, "at least 1"),
    ("mha-np-weight-shape", lambda: att.multi_head_attention_np(_np(3, 6), _np(6, 4), *[_np(6, 6)] * 3, n_heads=2), InputError, "w_q must be (6, 6)"),
    # attention (PyTorch)
    ("t-attn-numpy", lambda: att.scaled_dot_product_attention(_np(2, 2), _t(2, 2), _t(2, 2)), InputError, "NumPy one ends in _np"),
    ("t-attn-none", lambda: att.scaled_dot_product_attention(_t(2, 2), None, _t(2, 2)), InputError, "k must be a torch tensor"),
    ("t-attn-1d", lambda: att.scaled_dot_product_attention(_t(4), _t(3, 4), _t(3, 4)), InputError, "at least 2 dimension"),
    ("t-attn-dk", lambda: att.scaled_dot_product_attention(_t(3, 4), _t(3, 5), _t(3, 4)), InputError, "same last size d_k"),
    ("t-attn-lengths", lambda: att.scaled_dot_product_attention(_t(3, 4), _t(3, 4), _t(2, 4)), InputError, "one row per key"),
    ("t-attn-dtypes", lambda: att.scaled_dot_product_attention(_t(3, 4), _t(3, 4, dtype=torch.float64), _t(3, 4)), InputError, "same dtype"),
    ("t-attn-int", lambda: att.scaled_dot_product_attention(torch.ones(3, 4, dtype=torch.long), _t(3, 4), _t(3, 4)), InputError, "floating-point"),
    ("t-attn-nan", lambda: att.scaled_dot_product_attention(torch.full((2, 2), math.nan), _t(2, 2), _t(2, 2)), InputError, "NaN"),
    ("t-attn-int-mask", lambda: att.scaled_dot_product_attention(_t(2, 2), _t(2, 2), _t(2, 2), torch.ones(2, 2, dtype=torch.long)), InputError, "mask.bool()"),
    ("t-attn-mask-shape", lambda: att.scaled_dot_product_attention(_t(2, 2), _t(3, 2), _t(3, 2), torch.ones(2, 2, dtype=torch.bool)), InputError, "does not fit"),
    ("t-attn-nan-mask", lambda: att.scaled_dot_product_attention(_t(2, 2), _t(2, 2), _t(2, 2), torch.full((2, 2), math.nan)), InputError, "NaN"),
    ("t-attn-dropout", lambda: att.scaled_dot_product_attention(_t(2, 2), _t(2, 2), _t(2, 2), dropout_p=1.5), InputError, "between 0 and 1"),
    ("causal-bad-device", lambda: att.causal_mask(3, device="banana"), InputError, "not a device name"),
    ("padding-negative", lambda: att.padding_mask([2, -1], 4), InputError, "between 0 and max_len"),
    ("padding-too-long", lambda: att.padding_mask([5], 4), InputError, "between 0 and max_len"),
    ("padding-floats", lambda: att.padding_mask([1.5, 2.0], 4), InputError, "whole numbers"),
    ("padding-empty", lambda: att.padding_mask([], 4), InputError, "one per sequence"),
    ("padding-float-tensor", lambda: att.padding_mask(torch.tensor([1.0]), 4), InputError, "whole numbers"),
    ("additive-float", lambda: att.additive_mask(torch.ones(2, 2)), InputError, "boolean mask"),
    ("additive-list", lambda: att.additive_mask([[True]]), InputError, "torch tensor"),
    # blocks
    ("mha-width", lambda: _mha(_t(1, 3, 8)), InputError, "d_model=16"),
    ("mha-2d", lambda: _mha(_t(3, 16)), InputError, "(batch, tokens, 16)"),
    ("mha-numpy", lambda: _mha(_np(1, 3, 16)), InputError, "torch tensor"),
    ("mha-kv-batch", lambda: _mha(_t(1, 3, 16), _t(2, 3, 16)), InputError, "same size"),
    ("mha-kv-width", lambda: _mha(_t(1, 3, 16), _t(1, 3, 8)), InputError, "key_value must be"),
    ("mha-int-mask", lambda: _mha(_t(1, 3, 16), mask=torch.ones(3, 3, dtype=torch.long)), InputError, "mask.bool()"),
    ("mha-divisible", lambda: MultiHeadAttention(10, 3), InputError, "not divisible"),
    ("mha-zero-heads", lambda: MultiHeadAttention(8, 0), InputError, "at least 1"),
    ("ff-activation", lambda: FeedForward(8, 16, activation="unknown"), InputError, "'relu' or 'gelu'"),
    ("block-activation", lambda: TransformerBlock(8, 2, activation="swish"), InputError, "'relu' or 'gelu'"),
    # GPT
    ("gpt-id-too-big", lambda: _gpt(torch.tensor([[1, 40]])), InputError, "between 0 and 39"),
    ("gpt-negative-id", lambda: _gpt(torch.tensor([[-1, 2]])), InputError, "between 0 and 39"),
    ("gpt-float-ids", lambda: _gpt(torch.zeros(1, 3)), InputError, "whole numbers"),
    ("gpt-1d-ids", lambda: _gpt(torch.zeros(3, dtype=torch.long)), InputError, "ids[None]"),
    ("gpt-list-ids", lambda: _gpt([[1, 2]]), InputError, "torch tensor"),
    ("gpt-too-long", lambda: _gpt(torch.zeros(1, 17, dtype=torch.long)), InputError, "block_size=16"),
    ("gpt-targets-shape", lambda: _gpt(_ids, targets=torch.zeros(1, 3, dtype=torch.long)), InputError, "shape of idx"),
    ("gen-top-k-zero", lambda: _gpt.generate(_ids, 2, top_k=0), InputError, "top_k must be at least 1"),
    ("gen-top-k-str", lambda: _gpt.generate(_ids, 2, top_k="3"), InputError, "whole number"),
    ("gen-top-p", lambda: _gpt.generate(_ids, 2, top_p=1.5), InputError, "(0, 1]"),
    ("gen-temperature", lambda: _gpt.generate(_ids, 2, temperature=-1), InputError, "positive"),
    ("gen-negative-steps", lambda: _gpt.generate(_ids, -1), InputError, "at least 0"),
    ("gen-empty", lambda: _gpt.generate(torch.zeros(1, 0, dtype=torch.long), 2), InputError, "empty"),
    ("gen-generator", lambda: _gpt.generate(_ids, 2, generator=0), InputError, "torch.Generator"),
    ("probs-nan", lambda: next_token_probabilities(torch.tensor([[math.nan, 1.0]])), InputError, "NaN"),
    # positions
    ("sin-odd", lambda: sinusoidal_encoding(4, 5), InputError, "even"),
    ("sin-negative", lambda: sinusoidal_encoding(-1, 4), InputError, "at least 0"),
    ("sin-base", lambda: sinusoidal_encoding(4, 4, base=0), InputError, "positive"),
    ("sin-module-too-long", lambda: SinusoidalPositionalEncoding(8, max_len=4)(_t(1, 5, 8)), InputError, "max_len=4"),
    ("sin-module-width", lambda: SinusoidalPositionalEncoding(8, max_len=4)(_t(1, 3, 6)), InputError, "(batch, tokens, 8)"),
    ("learned-too-long", lambda: LearnedPositionalEmbedding(8, 4)(_t(1, 5, 8)), InputError, "max_len=4"),
    ("encdec-too-long", lambda: EncoderDecoder(10, 10, d_model=8, n_heads=2, n_layers=1, max_len=4)(
        torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long)), InputError, "max_len=4"),
    ("encdec-bad-id", lambda: EncoderDecoder(10, 10, d_model=8, n_heads=2, n_layers=1)(
        torch.tensor([[3, 10]]), torch.zeros(1, 2, dtype=torch.long)), InputError, "between 0 and 9"),
    ("rope-odd", lambda: RotaryEmbedding(5), InputError, "even"),
    ("rope-width", lambda: RotaryEmbedding(4)(_t(1, 3, 6)), InputError, "head_dim=4"),
    ("rope-positions", lambda: RotaryEmbedding(4)(_t(1, 3, 4), torch.arange(2)), InputError, "one number per token"),
    # figures
    ("heatmap-shape", lambda: attention_heatmap(np.eye(2), ["a", "b", "c"]), InputError, "one row per query"),
    ("heatmap-scores", lambda: attention_heatmap(np.array([[2.0, 1.0], [0.0, 1.0]]), ["a", "b"]), InputError, "sums to 1"),
    ("heatmap-str-tokens", lambda: attention_heatmap(np.eye(2), "ab"), InputError, "list of token strings"),
    ("heatmap-mask-shape", lambda: attention_heatmap(np.eye(2), ["a", "b"], mask=np.ones(3, bool)), InputError, "mask must be booleans"),
    ("heatmap-empty", lambda: attention_heatmap(np.zeros((0, 0)), []), InputError, "nothing to draw"),
    ("model-view-empty", lambda: model_view(np.zeros((2, 0, 3, 3)), labels={(0, 0): "x"}), InputError, "at least one of each"),
    ("model-view-3d", lambda: model_view(np.full((2, 3, 3), 1 / 3)), InputError, "(layers, heads, tokens, tokens)"),
    ("model-view-label", lambda: model_view(np.full((1, 1, 2, 2), 0.5), labels={(1, 0): "x"}), InputError, "not a (layer, head)"),
    ("head-view-head", lambda: head_view(np.full((2, 2, 2), 0.5), ["a", "b"], heads=[2]), InputError, "head 2 does not exist"),
    ("head-view-tokens", lambda: head_view(np.full((2, 2, 2), 0.5), ["a"]), InputError, "one label per token"),
    ("chain-same", lambda: chain_vs_web(["a", "b"], 0, 0), InputError, "two different words"),
    ("chain-bool", lambda: chain_vs_web(["a", "b"], True, 0), InputError, "two different words"),
    # records and text
    ("record-head-bool", lambda: _record.head(True, 0), InputError, "layer True does not exist"),
    ("record-head-float", lambda: _record.head(0, 0.0), InputError, "head 0.0 does not exist"),
    ("clean-bytes", lambda: clean_text(b"hello"), InputError, "string of characters"),
    ("clean-zero-width", lambda: clean_text("\u200b\u200b \u200d"), InputError, "only invisible characters"),
    ("clean-bom", lambda: clean_text("\ufeff"), InputError, "only invisible characters"),
    # models: names, devices and what stands for a model
    ("load-none", lambda: load(None), ModelNotFound, "Give a model name"),
    ("load-300-chars", lambda: load("x" * 300), ModelNotFound, "300 characters"),
    ("load-10000-chars", lambda: load("a/" + "b" * 9998), ModelNotFound, "10000 characters"),
    ("load-nul", lambda: load("mini\x00lm"), ModelNotFound, "not a model name"),
    ("load-banana-device", lambda: load("minilm", device="banana"), InputError, "not a device name"),
    ("load-device-int-type", lambda: load("minilm", device=[1]), InputError, "not a device name"),
    ("attend-model-none", lambda: attend("hello", None), InputError, "model must be a model name"),
    ("attend-model-int", lambda: attend("hello", 123), InputError, "not int"),
    ("find-heads-model-none", lambda: find_heads(None), InputError, "model must be a model name"),
    ("payload-model-int", lambda: explorer_payload(123), InputError, "not int"),
    ("induction-model-list", lambda: induction_record(["minilm"]), InputError, "not list"),
    ("vectors-model-none", lambda: embedding_table(None), InputError, "model must be a model name"),
    ("as-loaded-float", lambda: as_loaded(1.5), InputError, "not float"),
    # vectors
    ("cosine-widths", lambda: cosine_similarity(_np(3), _np(4, 2)), InputError, "as wide as a"),
    ("cosine-nan", lambda: cosine_similarity(np.array([np.nan, 1.0]), _np(3, 2)), InputError, "NaN"),
    ("project-one-point", lambda: project_2d(_np(1, 4)), InputError, "at least two vectors"),
    # checkers
    ("checker-called", lambda: check_softmax(np.zeros(3), verbose=False), InputError, "without calling it"),
]
if not CUDA:
    CASES.append(("load-cuda-without-gpu", lambda: load("minilm", device="cuda"), InputError, "no GPU"))
    CASES.append(("padding-cuda-without-gpu", lambda: att.padding_mask([1], 2, device="cuda"), InputError, "no GPU"))


def test_there_are_at_least_sixty_bad_inputs():
    assert len({case[0] for case in CASES}) == len(CASES) >= 60


@pytest.mark.parametrize("call, error, fragment", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_gets_the_courses_own_error(call, error, fragment):
    with pytest.raises(error) as caught:
        call()
    assert isinstance(caught.value, AttnlabError)
    assert fragment in str(caught.value), str(caught.value)
    # A message for a learner: the course's words, not a chained traceback of library internals.
    assert caught.value.__cause__ is None


# ------------------------------------------------------------------ bad input that needs a model


MODEL_CASES = [
    ("find-heads-top-negative", lambda lm: find_heads(lm, top=-1), "top must be at least 1"),
    ("find-heads-top-str", lambda lm: find_heads(lm, top="3"), "top must be a whole number"),
    ("payload-empty", lambda lm: explorer_payload(lm, {}), "it is empty"),
    ("payload-list", lambda lm: explorer_payload(lm, ["a sentence"]), "not list"),
    ("payload-blank-name", lambda lm: explorer_payload(lm, {" ": "a sentence"}), "needs a name"),
    ("payload-text-none", lambda lm: explorer_payload(lm, {"x": None}), "must be a sentence"),
    ("attend-zero-width", lambda lm: attend("\u200b" * 5, lm), "only invisible characters"),
    ("attend-merge-words", lambda lm: attend("hello", lm, merge_words="yes"), "True or False"),
    ("token-id-empty", lambda lm: token_id("", lm), "Give one word"),
    ("token-id-two-pieces", lambda lm: token_id("tokenizers", lm), "not one token"),
    ("neighbours-k-zero", lambda lm: nearest_neighbours("king", k=0, model=lm), "k must be at least 1"),
    ("induction-period", lambda lm: induction_record(lm, period=1), "period must be at least 2"),
]


@pytest.mark.parametrize("call, fragment", [case[1:] for case in MODEL_CASES], ids=[case[0] for case in MODEL_CASES])
def test_bad_input_with_a_model(call, fragment, minilm):  # noqa: F811
    with pytest.raises(InputError, match=None) as caught:
        call(minilm)
    assert fragment in str(caught.value), str(caught.value)


def test_checker_says_when_the_function_returns_nothing():
    result = check_softmax(lambda scores: None, verbose=False)
    assert not result.passed and "returned nothing" in result.hint and "return" in result.hint
    result = check_attention(lambda q, k, v, mask=None: None, verbose=False)
    assert not result.passed and "returned nothing" in result.hint


def test_hub_answers_tell_no_network_from_unknown_model(monkeypatch):
    """A captive portal answers, but not as the hub: that is "no network", not "no such model"."""
    from attnlab import models

    monkeypatch.setattr(models, "_from_pretrained", lambda where, offline: (_ for _ in ()).throw(OSError("no")))
    monkeypatch.setattr(models, "hub_lookup", lambda name, timeout=models.HUB_TIMEOUT: "unreachable")
    with pytest.raises(NeedsInternet, match="cannot be reached"):
        models._load_hub("someone/some-model")
    monkeypatch.setattr(models, "hub_lookup", lambda name, timeout=models.HUB_TIMEOUT: "missing")
    with pytest.raises(ModelNotFound, match="no model called"):
        models._load_hub("someone/some-model")


def test_hub_lookup_treats_a_portal_page_as_unreachable(monkeypatch):
    import io
    import urllib.request

    from attnlab import models

    class Portal(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Portal(b"<html>Log in to the Wi-Fi</html>"))
    assert models.hub_lookup("gpt2") == "unreachable"
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Portal(b'{"id": "gpt2"}'))
    assert models.hub_lookup("gpt2") == "found"


def test_small_vocabulary_models_get_induction_and_payload(tiny_models):  # noqa: F811
    gpt = load(str(tiny_models / "gpt2"))  # a vocabulary of about 300 tokens
    record, start = induction_record(gpt)
    period = (len(record.ids) - start) // 2
    assert period >= 2 and record.ids[start:start + period] == record.ids[start + period:start + 2 * period]
    assert set(find_heads(gpt)) >= {"induction", "previous token"}
    payload = explorer_payload(gpt, {"x": "the cat sat"})
    assert payload["layers"] == 3


def test_chain_vs_web_escapes_tokens_everywhere():
    fig = chain_vs_web(["<b>bold</b>", "a", "<img src=x>"], 0, 2)
    names = [trace.name or "" for trace in fig.data]
    assert all("<" not in name for name in names)
    assert "<" not in fig.layout.title.text.replace("<br>", "")
    assert all("<" not in str(b.args[1]["title.text"]).replace("<br>", "") for b in fig.layout.updatemenus[0].buttons)


def test_long_text_is_cut_to_the_models_positions_with_a_note(minilm):  # noqa: F811
    record = attend("word " * 10_000, minilm)
    assert len(record.tokens) == minilm.max_tokens
    assert any("cut to its first" in note for note in record.notes)


def test_one_huge_word_is_read_as_unknown_not_as_nothing(minilm):  # noqa: F811
    record = attend("a" * 10_000, minilm)  # WordPiece gives up on words over 100 letters
    assert minilm.tokenizer.unk_token in record.tokens
    assert any("over 100 letters" in note for note in record.notes)


def test_embedding_table_is_made_once(minilm):  # noqa: F811
    assert embedding_table(minilm) is embedding_table(minilm)


# ------------------------------------------------------------------ devices


@pytest.mark.parametrize("device", DEVICES)
def test_padding_mask_follows_the_device(device):
    mask = att.padding_mask([1, 3], 4, device=device)
    assert mask.device.type == device and mask.shape == (2, 1, 1, 4)
    assert att.padding_mask(torch.tensor([2], device=device), 4).device.type == device
    q = _t(2, 1, 4, 8).to(device)
    out, weights = att.scaled_dot_product_attention(q, q, q, mask)
    assert out.device.type == device and torch.all(weights[0, 0, :, 1:] == 0)


@pytest.mark.parametrize("device", DEVICES)
def test_masks_and_attention_on_the_device(device):
    causal = att.causal_mask(3, device=device)
    assert causal.device.type == device
    additive = att.additive_mask(causal)
    assert additive.device.type == device
    q = _t(1, 3, 4).to(device)
    out_bool, _ = att.scaled_dot_product_attention(q, q, q, causal)
    out_add, _ = att.scaled_dot_product_attention(q, q, q, additive)
    torch.testing.assert_close(out_bool, out_add)


@pytest.mark.parametrize("device", DEVICES)
def test_rotary_follows_the_input_device(device):
    rope = RotaryEmbedding(4)  # its buffers stay on the CPU: the input decides
    x = _t(1, 2, 5, 4).to(device)
    from_cpu_positions = rope(x, torch.arange(5))
    assert from_cpu_positions.device.type == device
    torch.testing.assert_close(from_cpu_positions, rope(x))


@pytest.mark.parametrize("device", DEVICES)
def test_gpt_runs_and_generates_on_the_device(device):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=16)).to(device)
    idx = torch.zeros(2, 1, dtype=torch.long, device=device)
    out = model.generate(idx, 5, top_k=5, generator=torch.Generator().manual_seed(0))  # a CPU generator
    assert out.device.type == device and out.shape == (2, 6)
    again = model.generate(idx, 5, top_k=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    model.set_fused(False)
    fused_off = model(out[:, :8], return_attention=True)
    assert fused_off.attentions.device.type == device
    if device != "cpu":
        with pytest.raises(InputError, match="model is on"):
            model(out.cpu())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("fused", [True, False])
def test_cross_attention_is_causal_the_same_in_both_paths(device, fused):
    torch.manual_seed(0)
    layer = MultiHeadAttention(8, 2, fused=fused).to(device).eval()
    written = MultiHeadAttention(8, 2, fused=False).to(device).eval()
    written.load_state_dict(layer.state_dict())
    query, memory = _t(1, 3, 8).to(device), _t(1, 5, 8).to(device)
    ours, _ = layer(query, memory, is_causal=True)
    reference, _ = written(query, memory, is_causal=True)
    torch.testing.assert_close(ours, reference)
    expected = F.scaled_dot_product_attention(*(layer.split_heads(p(x)) for p, x in
                                                ((layer.q_proj, query), (layer.k_proj, memory), (layer.v_proj, memory))),
                                              is_causal=True)
    torch.testing.assert_close(ours, layer.out_proj(layer.merge_heads(expected)))


@pytest.mark.parametrize("device", DEVICES)
def test_blocks_on_the_device(device):
    block = DecoderBlock(8, 2).to(device)
    x, memory = _t(2, 3, 8).to(device), _t(2, 4, 8).to(device)
    assert block(x, memory, memory_mask=att.padding_mask([4, 2], 4, device=device)).device.type == device
    model = EncoderDecoder(11, 12, d_model=8, n_heads=2, n_layers=1, max_len=6).to(device)
    src = torch.randint(0, 11, (2, 5), device=device)
    logits = model(src, torch.randint(0, 12, (2, 3), device=device), att.padding_mask([5, 3], 5, device=device))
    assert logits.shape == (2, 3, 12) and torch.isfinite(logits).all()


# ------------------------------------------------------------------ properties (hypothesis)

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False, width=32)


@FEW
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), elements=finite),
       st.floats(0.05, 20))
def test_softmax_rows_are_finite_distributions(scores, temperature):
    weights = att.softmax(scores, temperature=temperature)
    assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-9)


@st.composite
def attention_inputs(draw):
    batch, t_q, t_k = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    d_k, d_v = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 4.0]))
    q, k = (scale * torch.randn(batch, n, d_k, generator=generator, dtype=torch.float64) for n in (t_q, t_k))
    v = torch.randn(batch, t_k, d_v, generator=generator, dtype=torch.float64)
    mask = torch.rand(batch, t_q, t_k, generator=generator) < draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    if draw(st.booleans()):
        mask[:, 0] = False  # a fully masked row, every time
    return q, k, v, mask


@FEW
@given(attention_inputs())
def test_attention_equals_pytorch_sdpa_fully_masked_rows_included(inputs):
    q, k, v, mask = inputs
    q.requires_grad_(True)
    out, weights = att.scaled_dot_product_attention(q, k, v, mask)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    blocked = ~mask.any(dim=-1)  # (B, T_q): queries with no key to see
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    # The course's choice for a fully masked row: weights 0 and output 0 (torch 2.13's SDPA agrees).
    assert torch.all(weights[blocked] == 0) and torch.all(out[blocked] == 0)
    torch.testing.assert_close(weights.sum(-1)[~blocked], torch.ones_like(weights.sum(-1)[~blocked]))
    torch.testing.assert_close(out[~blocked], reference[~blocked])
    if torch.isfinite(reference).all():  # versions of torch that give 0 here must agree everywhere
        torch.testing.assert_close(out, reference)
    (grad,) = torch.autograd.grad(out.sum(), q)
    assert torch.isfinite(grad).all() and torch.all(grad[blocked] == 0)


@FEW
@given(attention_inputs())
def test_additive_mask_gives_the_same_finite_answer_and_gradients(inputs):
    q, k, v, mask = inputs
    q.requires_grad_(True)
    out_bool, _ = att.scaled_dot_product_attention(q, k, v, mask)
    out_add, _ = att.scaled_dot_product_attention(q, k, v, att.additive_mask(mask, dtype=q.dtype))
    torch.testing.assert_close(out_bool, out_add)
    (grad,) = torch.autograd.grad(out_add.sum(), q)
    assert torch.isfinite(grad).all()


@FEW
@given(attention_inputs())
def test_numpy_attention_equals_the_torch_one(inputs):
    q, k, v, mask = inputs
    out_np, weights_np = att.scaled_dot_product_attention_np(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    out, weights = att.scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(out_np, out.numpy(), atol=1e-10)
    np.testing.assert_allclose(weights_np, weights.numpy(), atol=1e-10)
