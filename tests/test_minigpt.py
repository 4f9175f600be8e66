"""The mini-GPT: its tokenizer, data, GPT-2 twin, the shipped checkpoint and its registration."""

import numpy as np
import pytest
import torch

from attnlab import minigpt
from attnlab.errors import InputError
from attnlab.gpt import GPT, GPTConfig
from attnlab.train import TrainSettings

TEXTS = ["To be, or not to be: that is the question.", "naïve café 😀 — ok\n\tdone", "<script>alert(1)</script>"]


@pytest.fixture(scope="module")
def tokenizer():
    return minigpt.CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzTBO ,.:;?!-<>/()1\n\t—")


@pytest.mark.parametrize("text", TEXTS)
def test_tokenizer_round_trips_and_marks_unknown_characters(tokenizer, text):
    ids = tokenizer.encode(text)
    assert len(ids) == len(text)
    assert np.array_equal(tokenizer.encode_array(text), ids)
    decoded = tokenizer.decode(ids)
    assert all(d == c or (d == "\ufffd" and c not in tokenizer.index) for d, c in zip(decoded, text))
    fast = tokenizer.to_transformers(64)
    assert fast(text)["input_ids"] == ids  # the registry's tokenizer reads text exactly as ours does


def test_splits_hold_out_the_last_tenth():
    splits = minigpt.shakespeare_splits()
    total = len(splits.train) + len(splits.val)
    assert len(splits.val) == pytest.approx(total / 10, abs=1)
    assert splits.train.dtype == torch.int64 and int(splits.train.max()) < splits.tokenizer.vocab_size
    assert (splits.train == 0).sum() == 0  # every character of the plays is in the vocabulary
    with pytest.raises(InputError):
        minigpt.shakespeare_splits(val_fraction=1.5)


def test_gpt2_twin_computes_the_same_logits_and_back():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    x = torch.randint(0, 20, (2, 16))
    twin = minigpt.to_transformers(gpt)
    assert torch.allclose(twin(x).logits, gpt(x).logits, atol=1e-5)
    back = minigpt.from_transformers(twin)
    assert torch.allclose(back(x).logits, gpt(x).logits, atol=1e-5)


def test_tiny_training_records_losses_and_head_scores():
    splits = minigpt.shakespeare_splits()
    recipe = minigpt.Recipe(GPTConfig(vocab_size=splits.tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2,
                                      n_embd=16), TrainSettings(steps=20, eval_every=10, warmup_steps=2), 8)
    trained = minigpt.train_minigpt(recipe, splits, device="cpu", progress=False)
    assert [row["step"] for row in trained.history.evals] == [10, 20]
    assert [row["step"] for row in trained.scores] == [10, 20]
    induction = np.array(trained.scores[-1]["induction"])
    assert induction.shape == (1, 2) and ((0 <= induction) & (induction <= 1)).all()
    assert trained.history.evals[-1]["val_loss"] < np.log(splits.tokenizer.vocab_size) + 0.5


def test_head_scores_of_even_attention_are_the_chance_level():
    """A head whose queries are all zero spreads its attention evenly: both scores must then
    equal the chance level, which checks that the scores read the right cells."""
    ids = minigpt.repeated_random_chars(40, period=8, batch=2)
    assert ids.shape == (2, 16) and torch.equal(ids[:, :8], ids[:, 8:])
    assert all(len(set(row[:8].tolist())) == 8 for row in ids)
    gpt = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=1, n_embd=8)).eval()
    torch.nn.init.zeros_(gpt.blocks[0].attention.q_proj.weight)  # all scores 0: uniform attention
    torch.nn.init.zeros_(gpt.blocks[0].attention.q_proj.bias)
    scores = minigpt.head_scores(gpt, ids)
    expected = minigpt.chance_level(8)
    assert expected == pytest.approx(np.mean([1 / (q + 1) for q in range(8, 16)]))
    assert scores["induction"][0, 0] == pytest.approx(expected, rel=1e-4)
    assert scores["previous token"][0, 0] == pytest.approx(expected, rel=1e-4)


def test_loss_by_position_falls_with_context():
    from attnlab.models import load

    gpt = minigpt.gpt_from_loaded(load("minigpt", device="cpu"))
    splits = minigpt.shakespeare_splits()
    losses = minigpt.loss_by_position(gpt, splits.val, n_windows=32)
    assert losses.shape == (gpt.config.block_size,)
    assert losses[-32:].mean() < losses[:4].mean()  # more context, better guesses


def test_the_shipped_checkpoint_is_registered_small_and_logged():
    from attnlab.extraction import attend
    from attnlab.models import load
    from attnlab.patterns import find_heads

    folder = minigpt.checkpoint_folder()
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 5_000_000
    log = minigpt.training_log()
    assert {"recipe", "tokens_per_second", "evals", "head_scores", "losses"} <= set(log)
    assert len(log["evals"]) == len(log["head_scores"]) and log["evals"][-1]["val_loss"] > 0
    lm = load("minigpt", device="cpu")
    assert lm.causal and lm.n_layers == log["recipe"]["model"]["n_layer"]
    text = "ROMEO:\nBut soft, what light through yonder window breaks?"
    record = attend(text, lm)
    assert record.tokens == tuple(text)
    gpt = minigpt.gpt_from_loaded(lm)
    ids = torch.tensor([record.ids])
    ours = gpt(ids, return_attention=True).attentions[:, 0].detach().numpy()
    assert np.abs(ours - record.attentions).max() < 1e-5  # the registry's maps are the course GPT's maps
    assert np.allclose(record.attentions.sum(-1), 1, atol=1e-5)
    found = find_heads(lm, text, top=1)
    assert set(found) >= {"previous token", "induction"}


def test_generation_from_the_checkpoint_is_seeded_and_text():
    from attnlab.models import load

    lm = load("minigpt", device="cpu")
    gpt, tok = minigpt.gpt_from_loaded(lm), minigpt.tokenizer_from_loaded(lm)
    assert tok.encode("Hamlet") == lm.tokenizer("Hamlet")["input_ids"]
    start = torch.tensor([tok.encode("ROMEO:\n")])
    out = [gpt.generate(start, 30, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(out[0], out[1]) and out[0].shape == (1, 37)
    assert "\ufffd" not in tok.decode(out[0][0])
