"""The mini-GPT training benchmark runs and reports sane numbers (correctness only: no timing thresholds)."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from attnlab.gpt import GPT
from attnlab.minigpt import Recipe, shakespeare_splits

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "minigpt_training.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("minigpt_training", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def splits():
    return shakespeare_splits()


@pytest.fixture(scope="module")
def tiny(bench):
    args = bench.parser().parse_args(["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "32",
                                      "--batch-size", "8", "--lr", "2e-3", "--warmup", "5"])
    return bench.recipe_from(args)


def test_command_line_overrides_reach_the_recipe(bench, tiny):
    assert (tiny.model.n_layer, tiny.model.n_head, tiny.model.n_embd, tiny.model.block_size) == (1, 2, 32, 32)
    assert (tiny.batch_size, tiny.settings.lr, tiny.settings.warmup_steps) == (8, 2e-3, 5)
    assert tiny.settings.min_lr == Recipe().settings.min_lr  # what is not given stays the course's
    assert tiny.settings.optimizer == Recipe().settings.optimizer == "muon"
    assert bench.recipe_from(bench.parser().parse_args(["--optimizer", "adamw"])).settings.optimizer == "adamw"


def test_reference_gpt_matches_the_course_gpt_in_size(bench):
    for config in (Recipe().model, replace(Recipe().model, n_layer=2, n_embd=48, n_head=3, bias=False)):
        assert bench.parameter_count(bench.ReferenceGPT(config)) == bench.parameter_count(GPT(config))


def test_throughput_reports_both_models(bench, tiny, splits, capsys):
    result = bench.throughput(tiny, "cpu", rounds=2, steps=3, warmup_steps=1, splits=splits)
    assert result["parameters"]["course"] == result["parameters"]["reference"]
    assert result["optimizer"] == "adamw"  # the models' speed is compared with the same, plain optimizer
    fp32 = result["precisions"]["float32"]
    for name in ("course", "reference"):
        assert len(fp32["tokens_per_second"][name]) == 2
        assert all(s > 0 and math.isfinite(s) for s in fp32["tokens_per_second"][name])
    assert fp32["ratio"] > 0
    assert "ratio" in capsys.readouterr().out


def test_budget_run_reports_losses_and_memory(bench, tiny, splits, capsys):
    result = bench.budget_run(tiny, "cpu", budget_s=3, eval_at_seconds=(1, 2, 300), splits=splits)
    assert result["stopped_by"] == "time" and 2.9 <= result["seconds"] < 10
    assert result["tokens_per_second"] > 0 and result["steps"] > 1
    assert all(math.isfinite(v) for v in result["val_loss_at"].values() if v is not None)
    assert result["val_loss_at"]["300s"] is None  # never reached in 3 seconds
    assert math.isfinite(result["final_val_loss"]) and result["final_val_loss"] < math.log(splits.tokenizer.vocab_size)
    assert result["memory"]["peak_bytes"] > 0
    out = capsys.readouterr().out
    assert "tokens/s" in out and "peak memory" in out


def test_main_writes_json(bench, tmp_path, capsys):
    path = tmp_path / "results.json"
    bench.main(["--only", "throughput", "--device", "cpu", "--rounds", "1", "--steps", "2", "--n-layer", "1",
                "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "4", "--json", str(path)])
    results = json.loads(path.read_text())
    assert results["info"]["torch"] == torch.__version__
    assert results["throughput"]["precisions"]["float32"]["median"]["course"] > 0


def test_the_race_runs_each_optimizer_and_writes_what_chapter_9_reads(bench, splits, tmp_path, capsys, monkeypatch):
    import attnlab.minigpt as minigpt

    monkeypatch.setattr(bench, "shakespeare_splits", lambda: splits)  # read once for the module
    out = tmp_path / "optimizer_race.json"
    bench.main(["--only", "budget", "--device", "cpu", "--budget-s", "1", "--eval-at", "0.5", "--n-layer", "1",
                "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4", "--race", str(out)])
    race = minigpt.optimizer_race(tmp_path)
    assert set(race["runs"]) == {"adamw", "muon"}
    assert race["runs"]["adamw"]["optimizer"] == "AdamW" and race["runs"]["muon"]["optimizer"] == "Muon + AdamW"
    for run in race["runs"].values():
        assert run["steps"] > 0 and run["final_val_loss"] > 0 and run["seconds"] >= 1
    shipped = minigpt.optimizer_race()  # the record chapter 9 shows: the recipe's model, five minutes each
    assert {run["budget_s"] for run in shipped["runs"].values()} == {300.0}
    assert shipped["runs"]["muon"]["optimizer"] == "Muon + AdamW"
