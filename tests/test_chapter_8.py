"""Chapter 8: training a tiny Transformer — the seq2seq helpers, the figures, the checkers."""

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
import torch.nn.functional as F

from attnlab import seq2seq
from attnlab.checkers import check_training_step, check_transformer_lr
from attnlab.errors import InputError
from attnlab.figures_training import (attention_film, clipping_chart, line_chart, round_rows, schedule_chart,
                                      smooth, study_curves, study_points)
from attnlab.train import TrainSettings, make_optimizer, train, transformer_2017_lr, warmup_cosine


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ seq2seq helpers


def test_batches_are_reproducible_and_teacher_forced():
    a, b = seq2seq.batches(4, 6, seed=3)(), seq2seq.batches(4, 6, seed=3)()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    src, decoder_input, target = a
    assert torch.equal(target, src.flip(1)) and (decoder_input[:, 0] == seq2seq.BOS).all()
    assert torch.equal(decoder_input[:, 1:], target[:, :-1])
    copy_src, _, copy_target = seq2seq.batches(2, 5, task="copy")()
    assert torch.equal(copy_src, copy_target)


def test_pattern_mass_reads_the_right_cells():
    n = 6
    assert seq2seq.pattern_mass(torch.eye(n).flip(1), "reverse") == pytest.approx(1.0)
    assert seq2seq.pattern_mass(torch.eye(n), "copy") == pytest.approx(1.0)
    assert seq2seq.pattern_mass(torch.eye(n), "reverse") == pytest.approx(0.0 if n % 2 == 0 else 1 / n)
    assert seq2seq.pattern_mass(torch.full((2, n, n), 1 / n)) == pytest.approx(1 / n)
    assert torch.equal(seq2seq.expected_source(4, "reverse"), torch.tensor([3, 2, 1, 0]))


def test_sequence_loss_is_teacher_forced_cross_entropy_with_optional_smoothing():
    model = seq2seq.new_model(d_model=16, seed=0)
    batch = seq2seq.batches(8, 5, seed=0)()
    logits = model(batch[0], batch[1])
    want = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[2].reshape(-1), label_smoothing=0.1)
    assert torch.allclose(seq2seq.sequence_loss(model, batch, label_smoothing=0.1), want)


def test_hand_loop_equals_the_trainer_and_snapshots_rows_sum_to_one():
    settings = TrainSettings(steps=20, lr=1e-2, min_lr=1e-3, warmup_steps=5, eval_every=10)
    model = seq2seq.new_model(d_model=16, seed=1)
    optimizer = make_optimizer(model, settings)
    next_batch = seq2seq.batches(16, 5, seed=1)
    model.train()
    losses = []
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step / settings.steps, settings, step)
        losses.append(seq2seq.training_step(model, next_batch(), optimizer, settings.clip_norm))
    snapshots = seq2seq.AttentionSnapshots(torch.tensor([1, 2, 3, 4, 5]), n=8)
    history = train(seq2seq.new_model(d_model=16, seed=1), seq2seq.sequence_loss, seq2seq.batches(16, 5, seed=1),
                    settings, evaluate=snapshots, progress=False)
    assert history.losses == losses
    assert [row["step"] for row in history.evals] == [10, 20] and len(snapshots.maps) == 2
    for weights in snapshots.maps:
        assert weights.shape == (5, 5) and torch.allclose(weights.sum(-1), torch.ones(5), atol=1e-5)
    assert 0 <= history.evals[-1]["pattern_mass"] <= 1


def test_confidence_and_bad_input():
    model = seq2seq.new_model(d_model=16, seed=0, dropout=0.1).train()
    result = seq2seq.confidence(model, 5, n=20)
    assert model.training  # its mode is given back
    assert 1 / 11 <= result["max_probability"] <= result["largest_probability"] <= 1
    assert result["entropy"] <= np.log(11) + 1e-5 and "share_above" not in result
    assert seq2seq.confidence(model, 5, n=20, above=0.0)["share_above"] == 1.0
    with pytest.raises(InputError):
        seq2seq.new_model(dropout=1.5)
    with pytest.raises(InputError):
        seq2seq.pattern_mass(torch.ones(3, 4) / 4)
    with pytest.raises(InputError):
        seq2seq.batches(4, 6, task="sort")
    with pytest.raises(InputError):
        seq2seq.AttentionSnapshots(torch.tensor([1, 12, 3]))
    with pytest.raises(InputError):
        seq2seq.confidence("not a model", 5)


def test_padded_batch_loss_equals_the_per_sequence_losses():
    sources = [[5, 3, 0, 1, 6, 2], [0, 0, 8], [4, 9, 0, 1]]
    src, decoder_input, target, mask = seq2seq.padded_batch(sources)
    assert src.shape == target.shape == decoder_input.shape == (3, 6) and mask.shape == (3, 1, 1, 6)
    assert (target[1, 3:] == seq2seq.PAD).all() and target[1, :3].tolist() == [8, 0, 0]
    assert decoder_input[1, :3].tolist() == [seq2seq.BOS, 8, 0] and (target == 0).sum() == 4  # real zeros kept
    model = seq2seq.new_model(d_model=16, seed=0, padding=True)
    with torch.no_grad():
        mixed = seq2seq.sequence_loss(model, (src, decoder_input, target, mask))
        alone = torch.stack([seq2seq.sequence_loss(model, seq2seq.padded_batch([s])) for s in sources])
    lengths = torch.tensor([len(s) for s in sources], dtype=torch.float)
    assert torch.allclose(mixed, (alone * lengths).sum() / lengths.sum(), atol=1e-6)
    copy = seq2seq.padded_batch([[1, 2, 3]], task="copy", length=5)
    assert copy[2].tolist() == [[1, 2, 3, seq2seq.PAD, seq2seq.PAD]]
    with pytest.raises(InputError):
        seq2seq.padded_batch([[1, 2], []])
    with pytest.raises(InputError):
        seq2seq.padded_batch([[1, 12]])


def test_round_rows_keeps_rows_summing_to_one():
    rng = np.random.default_rng(1)
    weights = rng.random((2, 7, 9))
    weights /= weights.sum(-1, keepdims=True)
    rounded = round_rows(weights)
    assert rounded.shape == weights.shape and np.allclose(rounded.sum(-1), 1, atol=1e-9)
    assert np.abs(rounded - weights).max() < 2e-3 and np.array_equal(rounded, rounded.round(3))


# ------------------------------------------------------------------ figures


def _maps(n=3, size=4):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        m = rng.random((size, size))
        out.append(m / m.sum(-1, keepdims=True))
    return out


def test_attention_film_has_a_frame_per_snapshot_with_rows_summing_to_one():
    maps = _maps()
    losses = np.linspace(2.3, 0.1, 40)
    fig = attention_film(maps, [0, 20, 40], [0.25, 0.5, 0.8], losses, list("abcd"), list("dcba"))
    assert isinstance(fig, go.Figure) and len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    assert {t.type for t in fig.data} <= {"heatmap", "scatter"}
    for frame in fig.frames:
        z = np.array(frame.data[0].z)
        assert np.allclose(z.sum(-1), 1, atol=1e-9) and np.array_equal(z, z.round(3))
    assert "80 %" in fig.frames[-1].layout.annotations[0].text
    assert len(fig.layout.meta["alt"]) > 20
    assert len(json.dumps(fig.to_plotly_json(), default=str)) < 60_000
    with pytest.raises(InputError):
        attention_film([np.ones((4, 4))], [0], [0.1], losses, list("abcd"), list("abcd"))  # rows sum to 4
    with pytest.raises(InputError):
        attention_film(maps, [0, 1], [0.1], losses, list("abcd"), list("abcd"))


def test_other_plotly_figures():
    assert np.allclose(smooth([1, 3, 5], 2), [1, 2, 4])
    for fig in (line_chart({"loss": [2, 1, 0.5]}, "loss", "A loss", alt="A loss curve falling over three steps"),
                schedule_chart({"p": {"2017": ([1, 2, 3], [0.1, 0.2, 0.1])}}),
                clipping_chart(["none", "norm"], [2.0, 1.0], [1.0, 1.0])):
        assert len(fig.layout.meta["alt"]) > 20 and {t.type for t in fig.data} <= {"scatter", "bar"}
    with pytest.raises(InputError):
        clipping_chart(["a"], [1.0, 2.0], [1.0])
    with pytest.raises(InputError):
        line_chart({}, "y", "t", alt="nothing to draw here at all")


def test_seaborn_study_figures_are_white():
    curves = pd.DataFrame({"arm": ["a"] * 4 + ["b"] * 4, "seed": [0, 0, 1, 1] * 2, "step": [1, 2] * 4,
                           "smoothed": [2.0, 1.0, 2.1, 1.1, 2.0, 1.5, 2.2, 1.4]})
    points = pd.DataFrame({"arm": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "accuracy": [0.9, 0.8, 0.7, 0.75]})
    for fig in (study_curves(curves), study_points(points, {"accuracy": "accuracy"})):
        assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    with pytest.raises(InputError):
        study_curves(points)


# ------------------------------------------------------------------ checkers


def _step(zero=True, backward=True, clip="norm", step=True, clip_after=False, returns=True):
    def fn(model, batch, optimizer, max_norm):
        loss = seq2seq.sequence_loss(model, batch)
        if zero:
            optimizer.zero_grad()
        if backward:
            loss.backward()
        if clip == "norm" and not clip_after:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), max_norm)
        if step:
            optimizer.step()
        if clip_after:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        return loss.item() if returns else None
    return fn


@pytest.mark.parametrize("mistake, words", [
    ({"zero": False}, "zero_grad"), ({"clip": "value"}, "clipped each value"), ({"step": False}, "optimizer.step()"),
    ({"clip_after": True}, "after optimizer.step()"), ({"clip": None}, "not clipped"),
    ({"backward": False}, "backward"),
    ({"returns": False}, "return"),
])
def test_training_step_checker_names_each_mistake(mistake, words):
    assert check_training_step(seq2seq.training_step, verbose=False)
    result = check_training_step(_step(**mistake), verbose=False)
    assert not result and words in result.hint, result.message()


def test_transformer_lr_checker():
    assert check_transformer_lr(lambda s, d, w: transformer_2017_lr(s, d, w), verbose=False)
    mistakes = {"max": (lambda s, d, w: d ** -0.5 * max(s ** -0.5, s * w ** -1.5), "min of the two"),
                "no d_model": (lambda s, d, w: min(s ** -0.5, s * w ** -1.5), "d_model"),
                "power": (lambda s, d, w: d ** -0.5 * min(s ** -0.5, s * w ** -0.5), "warmup ** -1.5"),
                "from 0": (lambda s, d, w: d ** -0.5 * min(max(s - 1, 1) ** -0.5, (s - 1) * w ** -1.5), "from 1")}
    for name, (fn, words) in mistakes.items():
        result = check_transformer_lr(fn, verbose=False)
        assert not result and words in result.hint, (name, result.message())
    with pytest.raises(InputError):
        check_transformer_lr(transformer_2017_lr(1, 512))
