"""Chapter 12 (Transformers at work): sentence vectors, the genre classifier, search and recall, model sizes,
pipelines on tiny saved models, the figures and the checkers."""

import json

import numpy as np
import pytest
import torch

from attnlab import classify, retrieval, sizes
from attnlab.checkers import (check_confusion, check_gpt2_parameters, check_int8_rows, check_recall_at_k,
                              check_sentence_embedding, check_top_k)
from attnlab.embed import embed, mean_pool, token_count
from attnlab.errors import InputError
from attnlab.figure_layout import LEGEND_BELOW
from attnlab.figures_tasks import confusion_chart, passage_scatter, score_bars, size_chart
from attnlab.heads import count_parameters
from attnlab.models import load, registered_folder
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def minilm():
    return load("minilm", device="cpu")


# ------------------------------------------------------------------ sentence vectors


def test_mean_pool_ignores_padding_and_equals_a_hand_mean():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pooled = mean_pool(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0].mean(0)) and torch.allclose(pooled[1], hidden[1, :2].mean(0))
    padded = torch.cat([hidden, torch.full((2, 3, 3), 50.0)], dim=1)
    assert torch.allclose(mean_pool(padded, torch.cat([mask, torch.zeros(2, 3, dtype=mask.dtype)], 1)), pooled)


def test_embed_equals_the_pipeline_and_is_unchanged_by_batching(minilm):
    from transformers import pipeline

    texts = ["A cat.", "The cat sat on the mat in the sun all afternoon.", "Stocks fell."]
    together = embed(texts, minilm)
    alone = np.concatenate([embed(t, minilm) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)               # padding inside a batch changes nothing
    assert np.allclose(np.linalg.norm(together, axis=1), 1, atol=1e-5)
    extract = pipeline("feature-extraction", model=str(registered_folder("minilm")), device="cpu")
    by_pipeline = torch.stack([o[0].mean(0) for o in extract(texts, return_tensors=True)])
    assert np.allclose(together, torch.nn.functional.normalize(by_pipeline, dim=-1).numpy(), atol=1e-5)
    assert minilm.model.config._attn_implementation == "eager"   # the fused switch is undone
    assert token_count(texts, minilm) == sum(len(minilm.tokenizer(t)["input_ids"]) for t in texts)


def test_embed_equals_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(registered_folder("minilm")), device="cpu")
    texts = ["The cat sat on the mat.", "Stock prices fell sharply today."]
    assert np.allclose(embed(texts, minilm), model.encode(texts, normalize_embeddings=True), atol=1e-4)


@pytest.mark.parametrize("call, fragment", [
    (lambda: mean_pool(np.zeros((1, 2, 3)), torch.ones(1, 2)), "torch tensor"),
    (lambda: mean_pool(torch.zeros(1, 2, 3), torch.ones(1, 3)), "same B and T"),
    (lambda: embed([], "minilm"), "non-empty list"),
    (lambda: embed([3], "minilm"), "list of strings"),
    (lambda: embed("hi", None), "model must be"),
    (lambda: embed("hi", "minilm", batch_size=0), "batch_size"),
    (lambda: classify.confusion([0, 5], [0, 1], 3), "numbered 0..2"),
    (lambda: classify.confusion([0, -1], [0, 1], 3), "numbered 0..2"),
    (lambda: classify.balanced_accuracy([1, 2]), "square confusion table"),
    (lambda: classify.fit_softmax_regression(np.ones((2, 3)), [0, 5], 3), "numbered 0..2"),
    (lambda: classify.fit_softmax_regression(np.ones((2, 3)), ["comedy", "history"], 3), "class numbers"),
    (lambda: classify.genre_passages(lines=10**6, plays=["macbeth"]), "shorter passages"),
    (lambda: classify.grouped_folds(["a", "b"], ["x", "y"], k=3), "k <= 2"),
    (lambda: classify.paired([0.5], [0.4]), "at least two folds"),
    (lambda: classify.cross_validate([0, 1], [np.array([0])], 2), "either features"),
    (lambda: retrieval.BM25("a string"), "list of strings"),
    (lambda: retrieval.BM25([]), "list of strings"),
    (lambda: retrieval.BM25(["the", "a of"]), "nothing to index"),
    (lambda: retrieval.extractive_answer(np.ones(3), [{"chapter": 1}], lambda s: s), "'text'"),
    (lambda: retrieval.relevant_passages([], [7]), "chapter, heading"),
    (lambda: retrieval.chance_recall(10, [], 1), "at least one question"),
])
def test_bad_input_is_refused_kindly(call, fragment):
    with pytest.raises(InputError, match=fragment):
        call()


# ------------------------------------------------------------------ the genre classifier


def test_play_genres_are_iambics_three_folders():
    genres = classify.play_genres()
    filed = [g for g in genres.values() if g]
    assert len(genres) == 38 and len(filed) == 25
    assert {g: filed.count(g) for g in classify.GENRES} == {"comedy": 8, "history": 11, "tragedy": 6}
    assert genres["henry-v"] == "history" and genres["hamlet"] == "tragedy" and genres["the-tempest"] is None


def test_spoken_lines_have_no_speakers_or_stage_directions():
    import re

    lines = classify.spoken_lines("henry-v")
    text = "\n".join(lines)
    assert "O for a Muse of fire, that would ascend" in lines
    assert "**" not in text and "Enter" not in text[:2000] and "CANTERBURY:" not in text and "Chorus" not in lines
    with pytest.raises(InputError, match="No play"):
        classify.spoken_lines("hamlet-2")
    direction = re.compile(r"[*_\[\]]|^(Exit|Exeunt|Enter)\b[^,;:!?]*\.$|\b(Exit|Exeunt)\b")
    for play in classify.play_genres():                                 # all 38 plays, every line
        for line in classify.spoken_lines(play):
            assert not direction.search(line), (play, line)
            assert len(re.findall(r"\b[A-Z][A-Z'-]+\b", line)) < 2, (play, line)     # names listed in capitals
            assert not re.match(r"^[A-Z][A-Z .'-]+:", line), (play, line)              # "ANTONIO: ..."
    henry_viii = " ".join(classify.spoken_lines("henry-viii"))
    assert "fixeth his eye" not in henry_viii                          # the second line of a long direction
    assert "Exit" not in " ".join(classify.spoken_lines("edward-iii"))    # *Exit.*, with stars


def test_genre_passages_are_seeded_and_do_not_overlap():
    a = classify.genre_passages(per_play=5, lines=3, seed=0, plays=["hamlet", "henry-v"])
    b = classify.genre_passages(per_play=5, lines=3, seed=0, plays=["hamlet", "henry-v"])
    assert a == b and len(a.texts) == 10 and a.genres[:5] == ["tragedy"] * 5 and a.plays[5] == "henry-v"
    assert len(set(a.texts)) == 10
    spoken = " ".join(classify.spoken_lines("hamlet"))
    assert all(t in spoken for t in a.texts[:5])


def test_grouped_folds_never_split_a_play_and_cover_everything():
    data = classify.genre_passages(per_play=2, lines=2, seed=0,
                                   plays=sorted(p for p, g in classify.play_genres().items() if g))
    folds = classify.grouped_folds(data.plays, data.genres, k=5, seed=0)
    assert sorted(np.concatenate(folds)) == list(range(len(data.plays)))
    plays = np.array(data.plays)
    for i, fold in enumerate(folds):
        rest = np.concatenate([f for j, f in enumerate(folds) if j != i])
        assert not set(plays[fold]) & set(plays[rest])
        assert {data.genres[j] for j in fold} == set(classify.GENRES)    # stratified: 6+ plays per genre
    with pytest.raises(InputError, match="differ in length"):
        classify.grouped_folds(["a"], [], k=2)


def test_softmax_regression_matches_scikit_learn():
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(60, 3)), axis=1)
    y[:30][y[:30] == 2] = 0                                          # unbalanced classes
    decay = 1e-2
    ours = classify.fit_softmax_regression(x, y, 3, weight_decay=decay, steps=500)
    theirs = linear_model.LogisticRegression(C=1 / (2 * decay * len(y)), class_weight="balanced", max_iter=5000,
                                             tol=1e-10).fit(x, y)
    with torch.no_grad():
        p_ours = torch.softmax(ours(torch.as_tensor(x)), -1).numpy()
    assert np.allclose(p_ours, theirs.predict_proba(x), atol=2e-3)


def test_confusion_and_balanced_accuracy():
    table = classify.confusion([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert table.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert table.sum(axis=1).tolist() == [2, 1, 3]
    assert classify.balanced_accuracy(table) == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    with pytest.raises(InputError):
        classify.confusion([0, 1], [0], 2)


def test_verdicts_read_right_whichever_way_the_numbers_fall():
    names = ("MiniLM", "the bag of words")
    clear_every = classify.verdict(classify.paired([0.6, 0.7, 0.65, 0.7], [0.4, 0.5, 0.45, 0.5]), names)
    assert clear_every.startswith("MiniLM does better than the bag of words in every one of the 4 folds")
    reversed_ = classify.verdict(classify.paired([0.4, 0.5, 0.45, 0.5], [0.6, 0.7, 0.65, 0.7]), names)
    assert reversed_.startswith("the bag of words does better than MiniLM in every one")
    mostly = classify.paired([0.60, 0.62, 0.64, 0.66, 0.55], [0.50, 0.52, 0.54, 0.56, 0.56])
    assert mostly.clear and "is ahead in 4 of the 5 folds" in classify.verdict(mostly, names)
    unclear = classify.paired([0.5, 0.3, 0.6, 0.4], [0.4, 0.5, 0.5, 0.45])
    assert not unclear.clear and classify.verdict(unclear, names).startswith("there is no clear winner")
    assert "equally well" in classify.verdict(classify.paired([0.5, 0.6], [0.5, 0.6]), names)
    # not clear: no leader named, both counts and the ties given, the spread called a standard deviation
    mixed = classify.verdict(classify.paired([0.417, 0.479, 0.458, 0.5, 0.521], [0.417, 0.438, 0.521, 0.5, 0.521]),
                             ("MiniLM", "the bag of words"))
    assert mixed == ("there is no clear winner: the fold-by-fold difference is 0.004 on average (standard deviation "
                     "0.037); of the 5 folds, MiniLM is ahead in 1, the bag of words in 1, and 3 are ties")


def test_tally_reads_right_for_zero_counts_and_ties():
    names = ("A", "B")
    assert classify.tally(names, 3, 5, 8, "draws") == "of the 8 draws, A is ahead in 3 and B in 5"
    assert classify.tally(names, 0, 4, 5) == "of the 5 folds, A is ahead in none, B in 4, and 1 is a tie"
    assert classify.tally(names, 2, 0, 2) == "of the 2 folds, A is ahead in 2 and B in none"
    assert classify.most_confused(np.eye(3, dtype=int) * 4).startswith("none")
    assert classify.most_confused(np.array([[3, 0, 2], [1, 4, 0], [0, 0, 5]])) == "to file 2 comedy passages under tragedy"
    assert classify.fold_scores([0, 1, 0, 1], [0, 1, 1, 1], [np.array([0, 1]), np.array([2, 3])], 2).tolist() == [1, 0.5]


def test_play_votes_break_ties_by_probability():
    predicted = np.array([0, 2, 2, 1, 1, 0])
    probabilities = np.array([[0.9, 0.05, 0.05], [0.3, 0.1, 0.6], [0.2, 0.2, 0.6],
                              [0.1, 0.5, 0.4], [0.1, 0.8, 0.1], [0.4, 0.3, 0.3]])
    answers, ties = classify.play_votes(predicted, probabilities, ["a", "a", "a", "b", "b", "c"])
    assert answers == {"a": 2, "b": 1, "c": 0} and ties == 0
    answers, ties = classify.play_votes(np.array([0, 2]), np.array([[0.5, 0, 0.5], [0.3, 0, 0.7]]), ["a", "a"])
    assert answers == {"a": 2} and ties == 1            # a tie goes to the larger summed probability, not to class 0
    assert set(classify.FOLIO) == {p for p, g in classify.play_genres().items() if g is None}


def test_cross_validate_equals_the_written_out_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    folds = [np.arange(i, 30, 3) for i in range(3)]
    out = classify.cross_validate(y, folds, 3, features=x)
    for test in folds:
        train = np.setdiff1d(np.arange(30), test)
        with torch.no_grad():
            want = classify.fit_softmax_regression(x[train], y[train], 3)(torch.as_tensor(x[test])).softmax(-1)
        assert np.allclose(out[test], want.numpy(), atol=1e-6)


def test_bag_of_words_takes_its_vocabulary_from_training_only():
    train, test, vocabulary = classify.bag_of_words(["the king the king", "a fool a fool"], ["the queen"])
    assert vocabulary == ["a", "fool", "king", "the"]
    assert np.allclose(np.linalg.norm(train, axis=1), 1) and test[0].tolist() == [0, 0, 0, 1]


# ------------------------------------------------------------------ search


DOCS = ["the cat sat on the mat", "dogs chase cats in the park", "stock markets fell sharply today",
        "a cat and a dog", "the weather is cold"]


def test_bm25_equals_a_hand_computation():
    bm = retrieval.BM25(DOCS)
    scores = bm.scores("cat")
    lengths = np.array([len(retrieval.terms(d)) for d in DOCS], dtype=float)
    idf = np.log(1 + (5 - 2 + 0.5) / (2 + 0.5))                         # "cat" is in two documents
    norm = 1.5 * (1 - 0.75 + 0.75 * lengths / lengths.mean())
    want = np.array([idf * 2.5 / (1 + norm[0]), 0, 0, idf * 2.5 / (1 + norm[3]), 0])
    assert np.allclose(scores, want)
    assert np.argmax(bm.scores("stock fell")) == 2 and bm.scores("unknownword").sum() == 0


def test_top_k_cosine_ranks_by_angle_not_length():
    docs = np.array([[10.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    best, scores = retrieval.top_k_cosine(np.array([0.0, 2.0]), docs, k=2)
    assert best.tolist() == [1, 2] and np.allclose(scores, [1, np.sqrt(0.5)])
    assert len(retrieval.top_k_cosine(np.ones(2), docs, k=10)[0]) == 3
    with pytest.raises(InputError, match="numbers"):
        retrieval.top_k_cosine(np.ones(3), docs)


def test_recall_at_k_edges():
    ranked, relevant = [[0, 1, 2], [2, 1, 0]], [{1}, {5}]
    assert retrieval.recall_at_k(ranked, relevant, 1) == 0
    assert retrieval.recall_at_k(ranked, relevant, 2) == 0.5
    assert retrieval.recall_at_k(ranked, relevant, 99) == 0.5
    with pytest.raises(InputError):
        retrieval.recall_at_k(ranked, relevant[:1], 1)
    with pytest.raises(InputError):
        retrieval.recall_at_k(ranked, relevant, 0)


def test_every_gold_section_exists_in_the_book():
    passages = retrieval.course_passages(ROOT / "book")
    assert {p["chapter"] for p in passages} == set(range(1, 12))          # chapters 12 and 13 never index themselves
    for question, kind, sections in retrieval.QUESTIONS:
        assert kind in ("own", "paraphrase")
        missing = [s for s in sections if not retrieval.relevant_passages(passages, [s])]
        assert not missing, f"{question!r}: no passage in {missing}; was the heading renamed? Update QUESTIONS."
    assert sum(k == "own" for _, k, _ in retrieval.QUESTIONS) == len(retrieval.QUESTIONS) // 2


def test_the_packaged_passages_equal_the_book():
    packaged = json.loads(retrieval.PACKAGED.read_text(encoding="utf-8"))
    assert packaged == retrieval.course_passages(ROOT / "book"), (
        "attnlab/data/course_passages.json is out of date: run `python -m attnlab.retrieval write`")
    assert retrieval.PACKAGED.stat().st_size < 400_000


def test_passages_hold_prose_only():
    passages = retrieval.course_passages(ROOT / "book")
    text = " ".join(p["text"] for p in passages)
    assert "```" not in text and "{glue" not in text and "{cite" not in text and "$" not in text
    assert "paddingmask" not in text and "scaleddotproductattention" not in text   # identifiers keep their _
    assert all(len(p["text"].split()) >= retrieval.MIN_WORDS for p in passages)


def test_cleaning_keeps_identifiers_and_marks_glued_numbers():
    for raw in ["divide by $d_k$ first", "call `padding_mask(lengths, T)` here",
                "use `F.scaled_dot_product_attention` and _emphasis_ here"]:
        clean = retrieval._clean(raw)
        assert retrieval.terms(clean) == retrieval.terms(raw.replace("$", "").replace("\\", " ")
                                                         .replace("{", " ").replace("}", " ")
                                                         .replace("_emphasis_", "emphasis")), (raw, clean)
    assert "d_k" in retrieval.terms("Why divide by the square root of d_k?")
    clean = retrieval._clean("The loss falls to {glue:text}`ch9_loss` nats. The next sentence is whole and fine.")
    assert retrieval.GAP in clean and "falls to […] nats" in clean
    assert retrieval.sentences(clean) == ["The next sentence is whole and fine."]   # a broken sentence is never quoted
    math = retrieval._clean("The memory is $M \\in \\mathbb{R}^{S \\times d}$ here. Divide by $\\sqrt{d_k}$ first. "
                            "The width $C$ stays readable here.")
    assert "√d_k" in math and "R^S × d" in math and "sqrt" not in math and "times" not in math
    assert retrieval.sentences(math) == ["The width C stays readable here."]        # math symbols are never quoted


def test_each_question_is_asked_twice_with_the_same_gold():
    own, para = retrieval.QUESTIONS[0::2], retrieval.QUESTIONS[1::2]
    assert len(own) == len(para) == len(retrieval.PAIRS)
    assert all(a[1] == "own" and b[1] == "paraphrase" and a[2] == b[2] and a[0] != b[0] for a, b in zip(own, para))


def test_chance_recall_equals_a_simulation():
    relevant = [{0, 1, 2}, {5}, set(range(10, 20))]
    rng = np.random.default_rng(0)
    for k in (1, 5):
        simulated = np.mean([retrieval.recall_at_k([list(rng.permutation(40)) for _ in relevant], relevant, k)
                             for _ in range(3000)])
        assert retrieval.chance_recall(40, relevant, k) == pytest.approx(simulated, abs=0.015)


def test_paraphrase_verdict_reads_right_either_way():
    found = {"cosine": 10, "BM25": 9}
    assert "cosine loses fewer, as expected" in retrieval.paraphrase_verdict({"cosine": 1, "BM25": 4}, found, 5)
    assert "BM25 loses fewer, against what" in retrieval.paraphrase_verdict({"cosine": 4, "BM25": 1}, found, 5)
    close = retrieval.paraphrase_verdict({"cosine": 2, "BM25": 3}, found, 5)
    assert close.endswith("too few to tell the two apart") and "fewer" not in close     # 1 question: no leader
    assert "too few" in retrieval.paraphrase_verdict({"cosine": 4, "BM25": 2}, found, 5)
    assert "by 3 questions" in retrieval.paraphrase_verdict({"cosine": 1, "BM25": 4}, found, 5)
    assert "the same number" in retrieval.paraphrase_verdict({"cosine": 2, "BM25": 2}, found, 5)


def test_answer_prompt_keeps_the_question_whatever_the_context(minilm):
    question = "What does a causal mask stop a token from seeing?"
    prompt = retrieval.answer_prompt(question, ["word " * 2000], minilm.tokenizer, max_tokens=128)
    assert question in prompt and len(minilm.tokenizer(prompt)["input_ids"]) <= 128 + 2
    assert prompt.index("Question:") < prompt.index("Context:")
    with pytest.raises(InputError):
        retrieval.answer_prompt("", ["a"])


def test_extractive_answer_picks_the_nearest_sentence():
    passages = [{"chapter": 1, "section": "a", "text": "Cats sleep a lot. Markets fell sharply on Monday."},
                {"chapter": 2, "section": "b", "text": "The weather is cold in winter here."}]
    table = {"Cats sleep a lot.": [1, 0, 0], "Markets fell sharply on Monday.": [0, 1, 0],
             "The weather is cold in winter here.": [0, 0, 1]}
    sentence, source = retrieval.extractive_answer(np.array([0.1, 1, 0.2]), passages,
                                                   lambda s: np.array([table[x] for x in s], dtype=float))
    assert sentence == "Markets fell sharply on Monday." and source["chapter"] == 1
    with pytest.raises(InputError):
        retrieval.extractive_answer(np.ones(3), [], lambda s: s)


# ------------------------------------------------------------------ sizes


PUBLISHED_COUNTS = {"BERT-base": 109_482_240, "BERT-large": 335_141_888, "DistilBERT": 66_362_880,
                    "GPT-2 small": 124_439_808, "GPT-2 XL": 1_557_611_200, "T5-small": 60_506_624,
                    "Llama-2-7B": 6_738_415_616}


@pytest.mark.parametrize("name", list(PUBLISHED_COUNTS))
def test_published_counts_from_the_meta_device_equal_the_formula(name):
    config = sizes.config_of(name)
    n = sizes.count_from_config(config)
    assert n == PUBLISHED_COUNTS[name]
    assert sizes.formula_count(config) in (n, None)


@pytest.mark.parametrize("name", ["minilm", "minigpt"])
def test_course_models_three_ways(name):
    lm = load(name, device="cpu")
    assert sizes.count_from_config(lm.model.config) == count_parameters(lm.model) == sizes.formula_count(lm.model.config)


def test_int8_rows_error_bound_and_bytes():
    weight = torch.randn(16, 32) * torch.linspace(0.01, 10, 16)[:, None]
    q, scale = sizes.int8_rows(weight)
    assert q.dtype == torch.int8 and scale.shape == (16, 1) and q.abs().max() <= 127
    assert sizes.int8_error(weight) <= 0.5 + 1e-6
    assert torch.allclose(q.float() * scale, weight, atol=float(scale.max()) / 2 + 1e-6)
    assert [sizes.weight_bytes(10, d) for d in ("fp32", "fp16", "int8")] == [40, 20, 10]
    with pytest.raises(InputError, match="dtype"):
        sizes.weight_bytes(10, "fp8")
    with pytest.raises(InputError, match="known"):
        sizes.config_of("GPT-5")
    assert sizes.human(1.5e9) == "1.50 B" and sizes.human(22.7e6) == "22.7 M"
    assert sizes.rule_of_thumb(12, 768, 50257) == 123_532_032


# ------------------------------------------------------------------ pipelines on tiny saved models


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = load("minilm", device="cpu").tokenizer
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=3, id2label={0: "comedy", 1: "history", 2: "tragedy"},
                        label2id={"comedy": 0, "history": 1, "tragedy": 2})
    BertForSequenceClassification(config).save_pretrained(root / "classifier")
    tokenizer.save_pretrained(root / "classifier")
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=16, n_layer=1, n_head=2, n_positions=64,
                                     bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id))
    gpt.save_pretrained(root / "writer")
    tokenizer.save_pretrained(root / "writer")
    return root


def test_classification_pipeline_on_a_tiny_saved_model(tiny_folders):
    from transformers import pipeline

    classify_text = pipeline("text-classification", model=str(tiny_folders / "classifier"), device="cpu", top_k=None)
    scores = classify_text(["to be or not to be", "a horse"])
    for answer in scores:
        assert {a["label"] for a in answer} == set(classify.GENRES)
        assert sum(a["score"] for a in answer) == pytest.approx(1, abs=1e-5)


def test_generation_pipeline_honours_max_new_tokens(tiny_folders):
    from transformers import pipeline

    write = pipeline("text-generation", model=str(tiny_folders / "writer"), device="cpu")
    prompt = "the king"
    out = write(prompt, max_new_tokens=5, do_sample=False, return_tensors=True)[0]["generated_token_ids"]
    assert len(out) == len(write.tokenizer(prompt)["input_ids"]) + 5


def test_seq2seq_runs_a_tiny_saved_encoder_decoder(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = load("minilm", device="cpu").tokenizer
    torch.manual_seed(0)
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    prompt = retrieval.answer_prompt("what does a mask do?", ["a mask hides the future. " * 200], tokenizer)
    answer = retrieval.seq2seq(str(tmp_path), prompt, max_new_tokens=4)          # the lab's code, beams and all
    assert isinstance(answer, str) and len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 4


def test_minigpt_pipeline_writes_what_generate_writes():
    from transformers import pipeline

    from attnlab.minigpt import gpt_from_loaded

    lm = load("minigpt", device="cpu")
    write = pipeline("text-generation", model=str(registered_folder("minigpt")), device="cpu")
    text = write("KING:\n", max_new_tokens=20, do_sample=False)[0]["generated_text"]
    ids = torch.tensor([lm.tokenizer("KING:\n")["input_ids"]])
    assert text == lm.tokenizer.decode(gpt_from_loaded(lm).generate(ids, 20, temperature=0)[0])


# ------------------------------------------------------------------ figures


def test_figures_follow_the_conventions():
    tables = {"a": np.array([[3, 1], [0, 2]]), "b": np.array([[2, 2], [1, 1]])}
    figures = [confusion_chart(tables, ["x", "y"]),
               score_bars(["one", "two"], {"m": [0.5, 0.25]}, "T", "share", "Bars of two shares for one method.",
                          lines={"chance": 0.5}),
               size_chart(["A", "B"], {"fp32": [4e9, 8e6], "fp16": [2e9, 4e6]}, 16e9, "16 GB"),
               passage_scatter(np.random.default_rng(0).normal(size=(6, 2)), ["c", "h", "t"] * 2, ["p"] * 6, [0.2, 0.1])]
    for fig in figures:
        assert len(fig.layout.meta["alt"]) > 20
        assert {t.type for t in fig.data} <= {"scatter", "bar", "heatmap"}
    heat = figures[0].data[0]
    assert np.array(heat.z)[::-1].sum(axis=1).tolist() == [4, 2]       # rows = true class, drawn top-down
    assert figures[1].layout.legend.orientation == LEGEND_BELOW["orientation"]
    with pytest.raises(InputError):
        confusion_chart({"a": np.zeros((3, 3))}, ["x", "y"])
    with pytest.raises(InputError):
        score_bars(["a"], {"m": [1, 2]}, "T", "y", "alt text that is long enough")
    per_group = score_bars(["accuracy", "balanced"], {"m": [0.5, 0.4]}, "T", "y", "alt text that is long enough",
                           lines={"largest genre": [0.44, None], "chance": [None, 1 / 3]})
    assert [list(t.y) for t in per_group.data[1:]] == [[0.44, None], [None, 0.333]]   # each only over its group
    with pytest.raises(InputError):
        score_bars(["a", "b"], {"m": [1, 2]}, "T", "y", "alt text that is long enough", lines={"c": [0.1]})


# ------------------------------------------------------------------ checkers


def _right_pool(hidden, mask):
    w = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * w).sum(1) / w.sum(1), dim=-1)


WRONG_POOLS = {
    "first token": (lambda h, m: torch.nn.functional.normalize(h[:, 0], dim=-1), "[CLS]"),
    "pads included": (lambda h, m: torch.nn.functional.normalize(h.mean(1), dim=-1), "pads are included"),
    "not normalised": (lambda h, m: (h * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True), "length 1"),
    "per token": (lambda h, m: h, "one vector per sentence"),
    "inverted mask": (lambda h, m: _right_pool(h, 1 - m), "inverted"),
}


def _right_top_k(q, d, k):
    s = d @ q / (np.linalg.norm(d, axis=1) * np.linalg.norm(q))
    return np.argsort(-s)[:k]


WRONG_TOP_K = {
    "dot": (lambda q, d, k: np.argsort(-(d @ q))[:k], "raw dot product"),
    "ascending": (lambda q, d, k: np.argsort(d @ q / np.linalg.norm(d, axis=1))[:k], "reversed"),
    "scores": (lambda q, d, k: np.sort(d @ q / (np.linalg.norm(d, axis=1) * np.linalg.norm(q)))[::-1][:k],
               "INDICES"),
    "k+1": (lambda q, d, k: _right_top_k(q, d, k + 1), "exactly 3"),
    "with scores": (lambda q, d, k: retrieval.top_k_cosine(q, d, k), "only the indices"),
}
WRONG_RECALL = {
    "precision": (lambda r, rel, k: np.mean([len(set(x[:k]) & y) / k for x, y in zip(r, rel)]), "precision@k"),
    "off by one": (lambda r, rel, k: np.mean([bool(set(x[:k + 1]) & y) for x, y in zip(r, rel)]), "off by one"),
    "share": (lambda r, rel, k: np.mean([len(set(x[:k]) & y) / len(y) for x, y in zip(r, rel)]), "as soon as one"),
    "top 1 only": (lambda r, rel, k: np.mean([x[0] in y for x, y in zip(r, rel)]), "top 1 only"),
    "k-th only": (lambda r, rel, k: np.mean([x[k - 1] in y for x, y in zip(r, rel)]), "k-th item"),
    "sum": (lambda r, rel, k: np.sum([bool(set(x[:k]) & y) for x, y in zip(r, rel)]), "instead of taking the mean"),
    "k-1": (lambda r, rel, k: np.mean([bool(set(x[:k - 1]) & y) for x, y in zip(r, rel)]), "ranked[:k-1]"),
}


def _n(n_layer, n_embd, vocab_size, n_positions):
    c = n_embd
    return n_layer * (12 * c * c + 13 * c) + vocab_size * c + n_positions * c + 2 * c


WRONG_COUNTS = {
    "untied": (lambda n_layer, n_embd, vocab_size, n_positions: _n(n_layer, n_embd, vocab_size, n_positions)
               + vocab_size * n_embd, "tied"),
    "no positions": (lambda n_layer, n_embd, vocab_size, n_positions: _n(n_layer, n_embd, vocab_size, n_positions)
                     - n_positions * n_embd, "position"),
    "rule of thumb": (lambda n_layer, n_embd, vocab_size, n_positions: 12 * n_layer * n_embd**2 + vocab_size * n_embd,
                      "rule of thumb"),
    "fixed": (lambda n_layer, n_embd, vocab_size, n_positions: 124_439_808, "use the arguments"),
    "float": (lambda n_layer, n_embd, vocab_size, n_positions: _n(n_layer, n_embd, vocab_size, n_positions) + 0.4,
              "whole number"),
    "LayerNorm weight only": (lambda n_layer, n_embd, vocab_size, n_positions:
                              _n(n_layer, n_embd, vocab_size, n_positions) - (2 * n_layer + 1) * n_embd, "bias as well"),
    "no final LayerNorm": (lambda n_layer, n_embd, vocab_size, n_positions:
                           _n(n_layer, n_embd, vocab_size, n_positions) - 2 * n_embd, "final LayerNorm"),
}


def _absmax(w):
    return w.abs().amax(dim=-1, keepdim=True) / 127


WRONG_INT8 = {
    "one scale": (lambda w: (torch.round(w / (w.abs().max() / 127)).to(torch.int8), w.abs().max() / 127), "ROW"),
    "no abs": (lambda w: (torch.round(w / (w.amax(-1, keepdim=True) / 127)).clamp(-127, 127).to(torch.int8),
                          w.amax(-1, keepdim=True) / 127), "ABSOLUTE"),
    "truncated": (lambda w: ((w / _absmax(w)).clamp(-127, 127).to(torch.int8), _absmax(w)), "round before"),
    "float q": (lambda w: (torch.round(w / _absmax(w)), _absmax(w)), "int8"),
    "255": (lambda w: (torch.round(w / (_absmax(w) * 127 / 255)).clamp(-127, 127).to(torch.int8),
                       _absmax(w) * 127 / 255), "absmax / 127"),
    "one thing": (lambda w: torch.round(w / _absmax(w)).to(torch.int8), "two things"),
}


def test_checkers_accept_the_right_answers():
    def confusion(t, p, k):
        return classify.confusion(t, p, k)

    assert check_sentence_embedding(_right_pool, verbose=False)
    assert check_top_k(_right_top_k, verbose=False)
    assert check_recall_at_k(retrieval.recall_at_k, verbose=False)
    assert check_confusion(confusion, verbose=False)
    assert check_gpt2_parameters(_n, verbose=False)
    assert check_int8_rows(sizes.int8_rows, verbose=False)


@pytest.mark.parametrize("checker, wrongs", [(check_sentence_embedding, WRONG_POOLS), (check_top_k, WRONG_TOP_K),
                                             (check_recall_at_k, WRONG_RECALL), (check_gpt2_parameters, WRONG_COUNTS),
                                             (check_int8_rows, WRONG_INT8)],
                         ids=["pool", "top_k", "recall", "count", "int8"])
def test_checkers_name_each_mistake(checker, wrongs):
    for name, (fn, fragment) in wrongs.items():
        result = checker(fn, verbose=False)
        assert not result and fragment in result.hint, (name, result.hint)


def test_confusion_checker_names_the_transpose_and_says_not_written_yet():
    result = check_confusion(lambda t, p, k: classify.confusion(t, p, k).T, verbose=False)
    assert not result and "transposed" in result.hint

    def fancy(t, p, k):
        table = np.zeros((k, k), dtype=int)
        table[t, p] += 1
        return table

    result = check_confusion(fancy, verbose=False)
    assert not result and "np.add.at" in result.hint

    def unwritten(*args):
        raise NotImplementedError

    assert "not written yet" in check_confusion(unwritten, verbose=False).hint
