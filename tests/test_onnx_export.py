"""The course's models as ONNX files for the browser: attention maps within 0.01 of PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlab.errors import InputError
from attnlab.minigpt import gpt_from_loaded
from attnlab.models import load
from attnlab.onnx_export import CachedStep, empty_cache, export, export_step, max_attention_difference, onnx_attentions

# The course's test sentences: plain, accents and an emoji and an unknown word, markup, a long one.
TEXTS = ["The animal didn't cross the street because it was too tired.",
         "Café naïve résumé 🤖 zxqvbnmq!",
         '<script>alert("hi")</script> "><img onerror=alert(1)>',
         "to be or not to be " * 12]
TOLERANCE = 0.01  # what the in-browser explorers promise: every weight within 0.01 of PyTorch's


@pytest.fixture(scope="module")
def minilm_file(tmp_path_factory):
    lm = load("minilm", device="cpu")
    return lm, export(lm, tmp_path_factory.mktemp("onnx") / "minilm.onnx")


def test_minilm_in_onnx_gives_pytorchs_attention(minilm_file):
    lm, path = minilm_file
    worst = max_attention_difference(path, lm, TEXTS)
    print(f"MiniLM, float16-stored weights: max |ONNX - PyTorch| attention weight {worst:.5f}, "
          f"{path.stat().st_size / 1e6:.1f} MB")
    assert worst <= TOLERANCE
    maps = onnx_attentions(path, lm.tokenizer("Attention is all you need.")["input_ids"])
    assert maps.shape[:2] == (lm.n_layers, lm.n_heads)
    assert np.allclose(maps.sum(-1), 1, atol=1e-4)  # every row a distribution
    assert path.stat().st_size < 0.55 * 4 * sum(p.numel() for p in lm.model.parameters())  # about half of float32


def test_the_mini_gpt_in_onnx_gives_attention_and_logits(tmp_path):
    import onnxruntime

    lm = load("minigpt", device="cpu")
    path = export(lm, tmp_path / "minigpt.onnx")
    assert max_attention_difference(path, lm, TEXTS[:2] + ["ROMEO:\nBut soft, what light"]) <= TOLERANCE
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.asarray([lm.tokenizer("ROMEO:")["input_ids"]], dtype=np.int64)
    maps, logits = session.run(["attentions", "logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert logits.shape == (1, ids.shape[1], lm.model.config.vocab_size)
    ours = gpt_from_loaded(lm)(torch.from_numpy(ids)).logits.detach().numpy()  # the course GPT on the same ids
    assert np.abs(logits - ours).max() < 0.05 and (logits.argmax(-1) == ours.argmax(-1)).all()
    assert np.allclose(np.triu(maps[0], k=1), 0, atol=1e-6)  # causal: nothing above the diagonal


def test_a_missing_file_gets_a_friendly_error(tmp_path):
    with pytest.raises(InputError, match="no ONNX file"):
        onnx_attentions(tmp_path / "nothing.onnx", [1, 2, 3])


def greedy_with_cache(session, prompt: list[int], count: int, window: int, empty: np.ndarray) -> list[int]:
    """The browser's writing loop (attnlab-browser-model.js generate), greedy, on the step file."""
    ids = list(prompt)
    logits, keys, values = session.run(None, {"input_ids": np.asarray([ids[-window:]]), "past_keys": empty,
                                              "past_values": empty})
    for _ in range(count):
        ids.append(int(logits[0].argmax()))
        if keys.shape[3] < window:  # one new token after the cache
            feeds = {"input_ids": np.asarray([ids[-1:]]), "past_keys": keys, "past_values": values}
        else:  # the window slides: positions shift, so it is read afresh
            feeds = {"input_ids": np.asarray([ids[-window:]]), "past_keys": empty, "past_values": empty}
        logits, keys, values = session.run(None, feeds)
    return ids


def test_the_mini_gpt_writes_the_same_text_with_its_key_value_cache(tmp_path):
    import onnxruntime

    gpt = gpt_from_loaded(load("minigpt", device="cpu")).eval()
    window = gpt.config.block_size
    prompt = torch.tensor([[44, 41, 39, 31, 41, 24, 2]])  # "ROMEO: "
    with torch.no_grad():  # in PyTorch first: the cached step's last logits equal the full forward's
        logits, keys, _ = CachedStep(gpt)(prompt, empty_cache(gpt), empty_cache(gpt))
        assert torch.allclose(logits, gpt(prompt).logits[:, -1], atol=1e-5)
        assert keys.shape == (gpt.config.n_layer, 1, gpt.config.n_head, prompt.size(1), gpt.config.n_embd // gpt.config.n_head)
    path = export_step(gpt, tmp_path / "step.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    count = 2 * window  # far past the point where the window slides
    ours = greedy_with_cache(session, prompt[0].tolist(), count, window, empty_cache(gpt).numpy())
    reference = gpt.generate(prompt, count, temperature=0)[0].tolist()  # reads the last `window` ids every step
    assert ours == reference
