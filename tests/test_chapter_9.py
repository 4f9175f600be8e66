"""Chapter 9 (build your own mini-GPT): its figures, measurements and checkers."""

import json

import numpy as np
import pytest
import torch

from attnlab.checkers import check_generation, check_sampling
from attnlab.errors import InputError
from attnlab.workshop import mistakes
from attnlab.figure_layout import LEGEND_BELOW
from attnlab.figures import HEAD_COLOURS
from attnlab.figures_gpt import (INDUCTION_HEAD, SUDDEN_SHARE, binned, find_phase_change, loss_bump,
                                 position_loss_curve, induction_over_training, loss_curve, next_char_bars,
                                 sample_explorer, sample_stats, show_chars, words_of)
from attnlab.gpt import GPT, GPTConfig, next_token_probabilities

# ------------------------------------------------------------------ measurements


def test_binned_averages_equal_stretches():
    steps, means = binned(list(range(1, 11)), bins=5)
    assert steps.tolist() == [2, 4, 6, 8, 10]
    assert means.tolist() == [1.5, 3.5, 5.5, 7.5, 9.5]
    steps, means = binned([1.0, 2.0], bins=10)  # never more bins than values
    assert steps.tolist() == [1, 2] and means.tolist() == [1.0, 2.0]
    with pytest.raises(InputError):
        binned([])


def test_sample_stats_counts_real_and_repeated_words():
    known = words_of("To be, or not to be: that is the question.")
    assert known == {"to", "be", "or", "not", "that", "is", "the", "question"}
    stats = sample_stats("To be or nott to be", known)
    assert stats["words"] == 6
    assert stats["real words"] == pytest.approx(5 / 6)
    assert stats["repeated words"] == pytest.approx(1 - 4 / 6)
    assert sample_stats("", known)["real words"] == 0.0
    with pytest.raises(InputError):
        sample_stats(42, known)


def _scores(curve, n_layers=2, n_heads=2, best=(1, 0)):
    table = np.full((len(curve), n_layers, n_heads), 0.02)
    table[:, best[0], best[1]] = curve
    return table


def test_phase_change_is_decided_by_the_numbers():
    steps = list(range(100, 2100, 100))  # a 2000-step run, evaluated every 100 steps
    loss = list(np.linspace(3.0, 1.5, len(steps)))
    curve = [0.02] * 8 + [0.3, 0.6] + [0.6] * 10  # 10 % → 90 % of 0.6 between steps 800 and 1000: 10 % of the run
    sudden = find_phase_change(steps, _scores(curve), loss)
    assert sudden["phase_change"] and sudden["sudden"] and (sudden["layer"], sudden["head"]) == (1, 0)
    assert (sudden["from_step"], sudden["to_step"], sudden["rise_steps"]) == (800, 1000, 200)
    assert sudden["rise_share"] == pytest.approx(0.1) and sudden["interval"] == 100
    assert (sudden["loss_before"], sudden["loss_after"]) == (loss[7], loss[9])
    gradual = find_phase_change(steps, _scores(list(np.linspace(0.0, 0.6, len(steps)))), loss)
    assert gradual["is_head"] and not gradual["sudden"] and not gradual["phase_change"]
    weak = find_phase_change(steps, _scores([0.01] * 10 + [0.15] * 10), loss)
    assert weak["sudden"] and not weak["is_induction_head"] and not weak["phase_change"]
    # sparser evaluations can only make a rise look slower
    sparse = find_phase_change(steps[::5], _scores(curve[::5]), loss[::5])
    assert sparse["rise_steps"] >= sudden["rise_steps"]
    single = find_phase_change([300], _scores([0.5]), [2.0])
    assert not single["phase_change"]
    with pytest.raises(InputError):
        find_phase_change(steps, np.zeros((4, 2, 2)), loss)


def test_loss_bump_compares_with_the_neighbouring_intervals():
    steps = list(range(0, 1100, 100))
    loss = [4.0, 3.0, 2.6, 2.5, 2.45, 2.40, 2.0, 1.95, 1.9, 1.86, 1.82]  # a fast fall 500 → 600
    bump = loss_bump(steps, loss, 500, 600)
    assert bump["bump"] and bump["intervals_compared"] == 6
    assert bump["usual_fall"] == pytest.approx(np.median([0.1, 0.05, 0.05, 0.05, 0.05, 0.04]))
    # the early fall (4.0 → 3.0) is not what it is compared with: only the neighbours are
    calm = loss_bump(steps, loss, 800, 900)
    assert not calm["bump"]
    with pytest.raises(InputError):
        loss_bump([100], [2.0], 100, 100)


def test_verdicts_on_the_shipped_log():
    from attnlab.minigpt import chance_level, training_log

    log = training_log()
    steps = [row["step"] for row in log["head_scores"]]
    val_by_step = {row["step"]: row["val_loss"] for row in log["evals"]}
    loss = [val_by_step[s] for s in steps]
    for pattern in ("induction", "previous token"):
        table = np.array([row[pattern] for row in log["head_scores"]])
        v = find_phase_change(steps, table, loss)
        assert v["final"] == pytest.approx(table[-1].max())
        assert v["is_head"] == (v["final"] >= INDUCTION_HEAD)
        assert v["phase_change"] == (v["is_head"] and v["rise_share"] <= SUDDEN_SHARE)
        assert v["from_step"] <= v["to_step"] and 0 <= v["rise_share"] <= 1
        if pattern == "induction" and not v["is_head"]:  # the shipped run: no induction head, scores near chance
            assert v["final"] < 3 * chance_level(32)


# ------------------------------------------------------------------ figures


def test_loss_curve_has_training_and_validation():
    fig = loss_curve([1, 2, 3], [3.0, 2.5, 2.0], [3], [2.2], title="Loss")
    assert [t.type for t in fig.data] == ["scatter", "scatter"]
    assert len(fig.layout.meta["alt"]) > 20 and fig.layout.legend.orientation == LEGEND_BELOW["orientation"]
    with pytest.raises(InputError):
        loss_curve([1, 2], [3.0], title="Loss")


def test_next_char_bars_menu_switches_settings_and_escapes():
    probs = {"temperature 1": [0.5, 0.3, 0.2], "temperature 0.5": [0.8, 0.15, 0.05]}
    fig = next_char_bars(probs, ["<", " ", "\n"], context="my lord <b>")
    assert list(fig.data[0].x) == ["&lt;", "␣", "⏎"]
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == 2 and list(buttons[1].args[0]["y"][0]) == [0.8, 0.15, 0.05]
    assert "<b>" not in json.dumps(fig.layout.xaxis.title.text)
    with pytest.raises(InputError):
        next_char_bars({"t": [0.5, 0.5]}, ["a", "b", "c"], context="x")


def test_sample_explorer_is_small_escaped_and_switches_text():
    samples = {f"T {t}": "ROMEO:\n" + "<script>alert(1)</script> " * 6 for t in (0.5, 1.0, 1.5)}
    notes = {name: "real words 50%" for name in samples}
    fig = sample_explorer(samples, notes, title="Samples")
    payload = fig.to_json()
    assert "<script>" not in payload and "&lt;script&gt;" in payload
    buttons = fig.layout.updatemenus[0].buttons
    assert len(buttons) == 3 and all(b.method == "relayout" for b in buttons)
    assert buttons[2].args[0]["annotations[0].text"] == fig.layout.annotations[0].text  # same texts, same seeds
    longest = max(len(line) for line in fig.layout.annotations[0].text.split("<br>"))
    assert longest <= 60  # wrapped for a phone (escaping lengthens "<" to "&lt;")
    assert len(fig.layout.meta["alt"]) > 20
    assert len(payload) < 60_000
    with pytest.raises(InputError):
        sample_explorer({})


def test_induction_over_training_shares_the_step_axis():
    steps = [100, 200, 300]
    scores = np.random.default_rng(0).uniform(0, 1, (3, 4, 4))
    fig = induction_over_training(steps, scores, [3.0, 2.5, 2.0], highlight=3)
    assert fig.layout.xaxis.matches == "x2"  # the loss panel follows the scores panel's steps
    coloured = [t for t in fig.data if t.name.startswith("L")]
    assert len(coloured) == 3 and {t.line.color for t in coloured} <= set(HEAD_COLOURS)
    best = np.unravel_index(scores[-1].argmax(), (4, 4))
    assert f"L{best[0]} H{best[1]}" in {t.name for t in coloured}
    assert sum(t.showlegend is not False for t in fig.data if t.name == "other heads") == 1
    assert len(fig.data) == 1 + 16
    assert all(t.type == "scatter" for t in fig.data) and len(fig.layout.meta["alt"]) > 20
    with pytest.raises(InputError):
        induction_over_training(steps, scores[:2], [3.0, 2.5, 2.0])
    both = induction_over_training(steps, scores, [3.0, 2.5, 2.0], previous=[0.1, 0.5, 0.6], previous_name="L0 H2",
                                   chance=0.02)
    assert len(both.data) == 1 + 16 + 2 and "L0 H2" in both.layout.meta["alt"]
    with pytest.raises(InputError):
        induction_over_training(steps, scores, [3.0, 2.5, 2.0], previous=[0.1])


def test_position_loss_curve():
    fig = position_loss_curve(np.linspace(2.4, 1.5, 128))
    assert len(fig.data[0].x) == 128 and fig.data[0].type == "scatter" and len(fig.layout.meta["alt"]) > 20
    with pytest.raises(InputError):
        position_loss_curve([1.0])


def test_show_chars_makes_whitespace_visible():
    assert show_chars([" ", "\n", "a", "&"]) == ["␣", "⏎", "a", "&"]  # escaped later, by the figure builders


# ------------------------------------------------------------------ the chapter's written-out code


def _gpt_logits(model, idx, causal=True):
    positions = torch.arange(idx.size(1))
    h = model.token_embedding(idx) + model.position_embedding(positions)
    for block in model.blocks:
        h, _ = block(h, is_causal=causal)
    return model.lm_head(model.final_norm(h))


def test_written_out_gpt_equals_the_package_and_is_causal():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16)).eval()
    idx = torch.randint(1, 20, (3, 12))
    with torch.no_grad():
        assert torch.allclose(_gpt_logits(model, idx), model(idx).logits, atol=1e-5)
        changed = idx.clone()
        changed[:, 7] = (changed[:, 7] % 19) + 1
        assert torch.equal(model(changed).logits[:, :7], model(idx).logits[:, :7])
        leaky = _gpt_logits(model, changed, causal=False)[:, :7]
        assert not torch.allclose(leaky, _gpt_logits(model, idx, causal=False)[:, :7])  # without the mask it leaks


def test_chapter_sampling_matches_the_package():
    logits = torch.randn(2, 30)
    for temperature, top_k in [(1.0, None), (0.5, 5), (2.0, 1)]:
        z = logits / temperature
        if top_k:
            z = z.masked_fill(z < torch.topk(z, top_k).values[:, -1:], float("-inf"))
        assert torch.allclose(torch.softmax(z, -1), next_token_probabilities(logits, temperature, top_k), atol=1e-6)


# ------------------------------------------------------------------ checkers


# The right answer and most wrong ones live in the instructors' catalog of mistakes: one source for both.
good_sampling, divide_after = mistakes.right_sampling, mistakes.sampling_divides_probabilities
keep_k_minus_1, no_renormalising = mistakes.sampling_strictly_greater, mistakes.sampling_not_renormalised
no_greedy = mistakes.sampling_no_greedy_case


def keep_k_plus_1(logits, temperature=1.0, top_k=None):
    if temperature == 0:
        return good_sampling(logits, 0)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.sort(logits, descending=True).values[:, top_k:top_k + 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits, -1)


@pytest.mark.parametrize("wrong, words", [
    (divide_after, "before the softmax"),
    (keep_k_minus_1, "strictly greater"),
    (keep_k_plus_1, "kept 2 characters"),
    (no_renormalising, "renormalise"),
    (no_greedy, "greedy"),
])
def test_check_sampling_catches_each_mistake(wrong, words):
    result = check_sampling(wrong, verbose=False)
    assert not result and words in result.hint, result.hint


def test_check_sampling_accepts_the_solution_and_says_not_written():
    assert check_sampling(good_sampling, verbose=False)

    def unwritten(logits, temperature=1.0, top_k=None):
        raise NotImplementedError

    assert "not written yet" in check_sampling(unwritten, verbose=False).hint
    with pytest.raises(InputError):
        check_sampling(good_sampling(torch.zeros(1, 3)))


def good_generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = model(idx[:, -model.config.block_size:]).logits[:, -1, :]
            probs = good_sampling(logits, temperature, top_k)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return idx


def no_crop(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    with torch.no_grad():
        for _ in range(max_new_tokens):
            probs = good_sampling(model(idx).logits[:, -1, :], temperature, top_k)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return idx


def crop_the_start(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    with torch.no_grad():
        for _ in range(max_new_tokens):
            probs = good_sampling(model(idx[:, :model.config.block_size]).logits[:, -1, :], temperature, top_k)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return idx


def first_position(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    with torch.no_grad():
        for _ in range(max_new_tokens):
            probs = good_sampling(model(idx[:, -model.config.block_size:]).logits[:, 0, :], temperature, top_k)
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], dim=1)
    return idx


def always_greedy(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    return good_generate(model, idx, max_new_tokens, 0.0)


def only_new(model, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
    return good_generate(model, idx, max_new_tokens, temperature, top_k, generator)[:, idx.size(1):]


def test_check_generation_accepts_the_solution():
    assert check_generation(good_generate, verbose=False)


@pytest.mark.parametrize("wrong, words", [
    (no_crop, "block_size"),
    (crop_the_start, "LAST block_size"),
    (first_position, "FIRST position"),
    (always_greedy, "argmax"),
    (only_new, "prompt AND the new tokens"),
])
def test_check_generation_catches_each_mistake(wrong, words):
    result = check_generation(wrong, verbose=False)
    assert not result and words in result.hint, result.hint


# ------------------------------------------------------------------ the shipped checkpoint


def test_minigpt_checkpoint_maps_are_causal_distributions():
    from attnlab.minigpt import gpt_from_loaded, repeated_random_chars
    from attnlab.models import load

    model = gpt_from_loaded(load("minigpt")).cpu().eval()
    probe = repeated_random_chars(model.config.vocab_size, period=16, batch=1, seed=3)
    with torch.no_grad():
        maps = model(probe, return_attention=True).attentions  # (L, B, H, T, T)
    assert torch.allclose(maps.sum(-1), torch.ones(maps.shape[:-1]), atol=1e-5)
    assert maps.triu(1).abs().max() == 0
