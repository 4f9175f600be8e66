"""The course's trainer: schedule, clipping, budgets, evaluation and friendly errors."""

import math

import pytest
import torch
from torch import nn

from attnlab.errors import InputError
from attnlab.train import (TrainSettings, hidden_matrices, make_optimizer, precision_for, train, transformer_2017_lr,
                           warmup_cosine)


def _regression(seed: int = 0):
    """A linear model learning y = 3x - 1: small enough for a test, real enough to learn."""
    torch.manual_seed(seed)
    model = nn.Linear(1, 1)
    generator = torch.Generator().manual_seed(seed)

    def next_batch():
        x = torch.randn(32, 1, generator=generator)
        return x, 3 * x - 1

    def loss_on(net, batch):
        x, y = batch
        return nn.functional.mse_loss(net(x), y)

    return model, loss_on, next_batch


def test_warmup_ramps_then_cosine_decays_to_the_floor():
    s = TrainSettings(lr=1e-2, min_lr=1e-3, warmup_steps=10, steps=100)
    assert warmup_cosine(0.0, s, 0) == pytest.approx(1e-3)  # first step: lr / warmup
    assert warmup_cosine(0.09, s, 9) == pytest.approx(1e-2)
    assert warmup_cosine(0.5, s, 50) == pytest.approx((1e-2 + 1e-3) / 2)
    assert warmup_cosine(1.0, s, 100) == pytest.approx(1e-3)


def test_the_2017_schedule_peaks_at_the_end_of_warmup():
    rates = [transformer_2017_lr(step, 512, 4000) for step in range(1, 20_001)]
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == 4000
    assert rates[3999] == pytest.approx(512 ** -0.5 * 4000 ** -0.5)
    with pytest.raises(InputError):
        transformer_2017_lr(0, 512)


def test_training_learns_and_records_every_step():
    model, loss_on, next_batch = _regression()
    history = train(model, loss_on, next_batch, TrainSettings(steps=200, lr=0.1, min_lr=0.01, warmup_steps=5,
                                                             weight_decay=0.0, eval_every=50),
                    evaluate=lambda net: {"weight": net.weight.item()}, progress=False)
    assert len(history.steps) == 200 and history.stopped_by == "steps"
    assert history.losses[-1] < 0.01 * history.losses[0]
    assert [row["step"] for row in history.evals] == [50, 100, 150, 200]
    assert history.evals[-1]["weight"] == pytest.approx(3, abs=0.05)
    assert history.tokens == 200 * 32 and history.tokens_per_second > 0
    assert not model.training  # handed back in eval mode


def test_grad_norm_is_recorded_before_clipping_and_clipping_bounds_the_update():
    model, loss_on, next_batch = _regression()
    history = train(model, loss_on, next_batch, TrainSettings(steps=3, lr=1.0, min_lr=0.0, warmup_steps=0,
                                                             weight_decay=0.0, clip_norm=1e-3), progress=False)
    assert history.steps[0]["grad_norm"] > 1e-3  # the norm before clipping is what is logged


def test_a_time_budget_stops_the_run_and_evaluates_at_the_given_times():
    model, loss_on, next_batch = _regression()
    history = train(model, loss_on, next_batch, TrainSettings(steps=10**7, max_seconds=0.3, eval_at_seconds=(0.1,)),
                    evaluate=lambda net: {"x": 1.0}, progress=False)
    assert history.stopped_by == "time" and 0.3 <= history.seconds < 5
    assert history.evals[0]["seconds"] >= 0.1 and len(history.evals) == 2


def test_weight_decay_skips_biases_and_norms():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    groups = make_optimizer(model, TrainSettings(weight_decay=0.1)).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def test_cpu_trains_in_float32():
    assert precision_for(torch.device("cpu"), True) == (None, False)
    assert precision_for(torch.device("cpu"), False) == (None, False)


def test_divergence_and_bad_settings_get_friendly_errors():
    model, _, next_batch = _regression()
    with pytest.raises(InputError, match="diverged"):
        train(model, lambda net, batch: torch.tensor(math.nan, requires_grad=True), next_batch,
              TrainSettings(steps=2), progress=False)
    with pytest.raises(InputError, match="min_lr"):
        TrainSettings(lr=1e-3, min_lr=1e-2)
    with pytest.raises(InputError, match="unknown setting"):
        TrainSettings().changed(learning_rate=1)
    with pytest.raises(InputError, match="function"):
        train(model, "loss", next_batch, progress=False)
    with pytest.raises(InputError, match="torch.nn.Module"):
        train("model", lambda n, b: 0, next_batch, progress=False)


def _tiny_gpt():
    from attnlab.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8))


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest():
    model = _tiny_gpt()
    optimizer = make_optimizer(model, TrainSettings(optimizer="muon"))
    muon, adamw = optimizer.optimizers
    in_muon = [p for g in muon.param_groups for p in g["params"]]
    in_adamw = [p for g in adamw.param_groups for p in g["params"]]
    assert {id(p) for p in in_muon} == {id(p) for p in hidden_matrices(model)}
    assert len(in_muon) == 2 * 6  # q, k, v, out, expand, contract in each of the two blocks
    assert all(p.dim() == 2 for p in in_muon)
    # The tied embedding / output matrix, positions, norms and biases stay with AdamW; none is stepped twice.
    assert id(model.token_embedding.weight) in {id(p) for p in in_adamw}
    assert {id(p) for p in in_muon}.isdisjoint({id(p) for p in in_adamw})
    assert len(in_muon) + len(in_adamw) == len(list(model.parameters()))


def test_training_with_muon_lowers_the_loss_and_says_which_optimizer_ran():
    model = _tiny_gpt()
    x = torch.randint(0, 11, (4, 8), generator=torch.Generator().manual_seed(1))
    history = train(model, lambda net, batch: net(*batch).loss, lambda: (x, x),
                    TrainSettings(steps=60, lr=1e-2, warmup_steps=5, optimizer="muon"), progress=False)
    assert history.optimizer == "Muon + AdamW"
    assert history.losses[-1] < 0.5 * history.losses[0]
    plain = train(_tiny_gpt(), lambda net, batch: net(*batch).loss, lambda: (x, x), TrainSettings(steps=2), progress=False)
    assert plain.optimizer == "AdamW"


def test_muon_with_adamw_works_with_a_gradient_scaler():
    # A T4 trains in fp16 with a GradScaler, which unscales and steps the optimizer it is given.
    model = _tiny_gpt()
    optimizer = make_optimizer(model, TrainSettings(optimizer="muon"))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x = torch.randint(0, 11, (2, 8))
    before = model.blocks[0].feed_forward.expand.weight.detach().clone()
    scaler.scale(model(x, x).loss).backward()
    scaler.unscale_(optimizer)
    grad = model.blocks[0].attention.q_proj.weight.grad
    unscaled = grad.clone()
    scaler.step(optimizer)
    scaler.update()
    assert torch.isfinite(unscaled).all() and unscaled.abs().max() < 10  # divided by the scale again
    assert not torch.equal(before, model.blocks[0].feed_forward.expand.weight)


def test_muon_falls_back_to_adamw_with_a_warning_on_an_old_pytorch(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.warns(UserWarning, match="no torch.optim.Muon"):
        optimizer = make_optimizer(_tiny_gpt(), TrainSettings(optimizer="muon"))
    assert isinstance(optimizer, torch.optim.AdamW)


def test_an_unknown_optimizer_gets_a_friendly_error():
    with pytest.raises(InputError, match="optimizer 'sgd'"):
        TrainSettings(optimizer="sgd")


def test_an_untied_output_layer_stays_with_adamw():
    from attnlab import seq2seq

    model = seq2seq.new_model(seed=0)  # an encoder-decoder whose output layer is its own nn.Linear
    chosen = {id(p) for p in hidden_matrices(model)}
    assert id(model.generator.weight) not in chosen
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(chosen) == len(linears) - 1  # every other Linear's matrix is Muon's
