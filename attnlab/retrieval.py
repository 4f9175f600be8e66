"""Search over the course's own chapters: the passages, cosine top-k, BM25, recall@k and an extractive answer.

``python -m attnlab.retrieval write`` refreshes the packaged copy of the passages (used where the book
folder is absent, as in Colab).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from attnlab import validate
from attnlab.errors import InputError

PACKAGED = Path(__file__).parent / "data" / "course_passages.json"
CHAPTERS = range(1, 12)              # chapters 1–11: this chapter and the next never index themselves
MIN_WORDS = 25

# Written questions, each asked twice with the same gold: once in the chapter's own words, once paraphrased
# (other words, the same meaning). Each comes with the sections (chapter, heading) that answer it; the gold was
# judged once, by the chapter's author, reading the top three passages each method returned. A gold entry is a
# whole section (chapter, heading), or (chapter, heading, phrase): only that section's passages holding the phrase.
PAIRS = [
    ("Why do we divide the attention scores by the square root of d_k?",
     "Why are the raw match numbers shrunk before they are turned into shares?",
     [(4, "Step 4: scaling by √d_k")]),
    ("What does a causal mask stop a token from seeing?",
     "How do we stop the model peeking at the answer it is supposed to guess?",
     [(7, "The causal mask"), (7, "Analogy: a translator at her desk", "That is the causal mask"),
      (9, "The model: a GPT, written out", "from the past alone")]),
    ("How does a sinusoidal positional encoding give each position a vector?",
     "How does each place in the sentence get its own fingerprint made of waves?",
     [(3, "The math: sinusoidal positional encoding")]),
    ("What does layer normalization do to each token's vector?",
     "How are the numbers describing each word rescaled to a standard spread?",
     [(6, "LayerNorm: one token at a time"), (6, "Analogy: a shared notebook", "LayerNorm rescales")]),
    ("How does the key/value cache make generation faster?",
     "When writing word after word, how do we avoid redoing the same work for the earlier words?",
     [(11, "Writing with a key/value cache")]),
    ("What is an induction head?",
     "Which part of the model notices that a sequence repeats and copies what came next last time?",
     [(9, "Its heads: previous-token and induction heads")]),
    ("How is a word split into WordPiece tokens?",
     "How does the program chop an unfamiliar long word into smaller pieces it knows?",
     [(2, "The code: a real tokenizer"), (2, "Analogy: a cloakroom with numbered tickets", "cut into pieces")]),
    ("What does temperature change when the mini-GPT samples the next character?",
     "How do we make the model's writing more adventurous or more predictable?",
     [(9, "Generating: temperature, top-k and top-p"),
      (9, "Analogy: an actor who improvises one letter at a time", "Temperature is how daring")]),
    ("Why does attention without a positional encoding not know the order of the words?",
     "Why would a model that reads everything at once not know which word came first?",
     [(3, 'The problem, in code: "dog bites man"'), (3, "Analogy: seats in a theatre"),
      (6, "The position-wise feed-forward network", "without positional encodings")]),
    ("How does the embedding matrix turn token ids into vectors?",
     "When someone types a sentence, how are its words turned into numbers the network can use?",
     [(2, "The math: ids and the embedding lookup"), (2, "The code: the embedding matrix"),
      (2, "Analogy: a cloakroom with numbered tickets", "rack behind the counter")]),
    ("Why does the cost of attention grow with the square of the sequence length?",
     "Why does the amount of work explode when the text gets twice as long?",
     [(11, "Counting first"), (11, "Time against length: written out and fused"),
      (11, "When does attention stop being cheap?"), (1, "Explore: the chain and the web", "T^2 work")]),
    ("What does a padding mask do to the pad tokens?",
     "When short sentences are filled up to a common length, how is the filler kept out of the result?",
     [(7, "The padding mask, and both together"), (4, "The code: attention in NumPy and in PyTorch", "padded to the"),
      (8, "The training loop, written out once", "ignore_index=PAD")]),
    ("Why use several attention heads, each with its own projections?",
     "Why run several smaller lookups side by side instead of one big one?",
     [(5, "Many heads, each with its own projections"), (5, "Analogy: a panel of specialists"),
      (5, "Explore: the twelve heads of a MiniLM layer", "Because each head has its own")]),
    ("Why did recurrent networks struggle with long sequences?",
     "Why did older networks that read one word after another struggle with long texts?",
     [(1, "The math: two ways to read"), (1, "Analogy: a whisper chain and a round table")]),
    ("Why does a learning-rate warmup help training?",
     "Why should the step size start small in the first updates of training?",
     [(6, "Measured: post-LN against pre-LN in training"), (8, "Training tips, measured")]),
    ("Do large attention weights explain a model's prediction?",
     "Does a big weight on a word prove that the word caused the prediction?",
     [(10, "What attention does and does not explain"),
      (10, "Analogy: an eye tracker in a reading room", "not a record of what the reader concluded")]),
]
QUESTIONS = [(q, kind, gold) for own, para, gold in PAIRS for q, kind in ((own, "own"), (para, "paraphrase"))]


def _root_book() -> Path | None:
    """The course repository's book folder, found upwards from this package or the cwd (as labs.find_root
    does; not imported from there, because attnlab.labs needs nbformat, which a Colab lab need not install)."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "_config.yml").is_file() and (folder / "book").is_dir():
                return folder / "book"
    return None


# LaTeX commands written as the symbols they print; a sentence holding one of these is never quoted (see MATH)
_SYMBOLS = {"times": "×", "sqrt": "√", "in": "∈", "cdot": "·", "top": "ᵀ", "le": "≤", "leq": "≤", "ge": "≥",
            "geq": "≥", "approx": "≈", "to": "→", "rightarrow": "→", "leftarrow": "←", "sum": "Σ", "infty": "∞",
            "dots": "…", "ldots": "…", "cdots": "…", "vdots": "…", "odot": "⊙", "frac": "÷", "tfrac": "÷",
            "partial": "∂", "Longleftrightarrow": "⇔"}
MATH = frozenset("^×√∈·ᵀ≤≥≈→←Σ∞…⊙÷∂⇔")   # what only math leaves in the text


def _plain_math(latex: str) -> str:
    """``\\sqrt{d_k}`` → ``√ d_k``: operators become their symbols, other commands lose their backslash,
    braces become spaces."""
    text = re.sub(r"\\([a-zA-Z]+)", lambda m: f" {_SYMBOLS[m.group(1)]} " if m.group(1) in _SYMBOLS else m.group(0),
                  latex)
    text = re.sub(r"\\(mathbb|mathrm|operatorname|text|mathbf|left|right|,|;|!)", " ", text)
    text = re.sub(r"\\([a-zA-Z]+)", r"\1", text)
    text = re.sub(r"\s+", " ", re.sub(r"[{}\\]", " ", text)).strip()
    return re.sub(r"√ | ?\^ ?", lambda m: m.group(0).strip(), text)              # √d_k, R^S


GAP = "[…]"                          # stands where the page glues a number in: the value is not in the source


def _clean(paragraph: str) -> str:
    """Markdown prose → plain text: roles and links → their words, math → plain symbols, glued values → GAP."""
    text = re.sub(r"\{(glue:text|glue)\}`[^`]*`", GAP, paragraph)          # a number computed on the page
    text = re.sub(r"\{(cite:p|cite:t|numref|eq)\}`[^`]*`", "", text)       # citations, references
    text = re.sub(r"\{[a-z:]+\}`([^`<]*?)\s*(<[^`]*>)?`", r"\1", text)   # {doc}`words <target>` → words
    text = re.sub(r"\$([^$]+)\$", lambda m: _plain_math(m.group(1)), text)   # inline math, as plain symbols
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)                # [words](link) → words
    text = re.sub(r"[`*]|(?<!\w)_|_(?!\w)", "", text)                  # emphasis; d_k and padding_mask stay
    text = re.sub(r"\(\s*\)|\s+([,.;:])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def read_chapter(path: Path) -> list[dict]:
    """The prose paragraphs of one chapter file, each with its section heading (code, math, directives left out)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)         # front matter
    passages, section, paragraph, fence, in_math, in_list = [], "", [], None, False, False
    chapter = int(path.name[:2])

    def flush():
        clean = _clean(" ".join(paragraph))
        if len(clean.split()) >= MIN_WORDS:
            passages.append({"chapter": chapter, "doc": path.stem, "section": section, "text": clean})
        paragraph.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if fence:
            if stripped == fence:
                fence = None
            continue
        marker = re.match(r"^(`{3,}|~{3,})", stripped)
        if marker:
            flush()
            fence = marker.group(1)
            continue
        if stripped.startswith("$$"):
            flush()
            in_math = not (in_math or stripped.endswith("$$") and len(stripped) > 2)
            continue
        if in_math:
            continue
        heading = re.match(r"^(#+)\s+(.*)", stripped)
        if heading:
            flush()
            if len(heading.group(1)) == 2:
                section = _clean(heading.group(2))
            continue
        if re.match(r"^\d+\.\s|^[-*]\s", stripped):
            flush()                                                # a list item and its continuation lines
            in_list = True
            continue
        if not stripped or stripped.startswith(("|", "<", ":", "(", "!")):
            flush()                                                # blank, table, HTML, label
            in_list = in_list and bool(stripped)
            continue
        if not in_list:
            paragraph.append(stripped)
    flush()
    return passages


def course_passages(book: Path | str | None = None) -> list[dict]:
    """Paragraphs of chapters 1–11 ({chapter, doc, section, text}): from the book folder, else the packaged copy."""
    folder = Path(book) if book is not None else _root_book()
    if folder is None:
        return json.loads(PACKAGED.read_text(encoding="utf-8"))
    paths = sorted(p for p in folder.glob("[0-9][0-9]-*.md") if int(p.name[:2]) in CHAPTERS)
    if not paths:
        raise InputError(f"No chapters found in {folder}: it should hold files such as 04-attention-from-scratch.md.")
    return [passage for path in paths for passage in read_chapter(path)]


def top_k_cosine(query: np.ndarray, documents: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` documents (N, C) most similar to ``query`` (C,) by cosine, best first, and their scores."""
    query = validate.numeric_array(query, "query")
    documents = validate.numeric_array(documents, "documents", min_dims=2)
    k = min(validate.whole_number(k, "k", minimum=1), len(documents))
    if query.shape[-1] != documents.shape[-1]:
        raise InputError(f"query has {query.shape[-1]} numbers but each document {documents.shape[-1]}.")
    scores = documents @ query / (np.linalg.norm(documents, axis=1) * np.linalg.norm(query) + 1e-12)   # (N,)
    best = np.argsort(-scores, kind="stable")[:k]
    return best, scores[best]


_STOP = frozenset("a an and are as at be by do does for from how in is it its of on or that the this to was "
                  "what when which who why with we you".split())


def terms(text: str) -> list[str]:
    """Lower-case words and numbers (``d_k`` and ``padding_mask`` stay one term), common function words left out."""
    return [w for w in re.findall(r"[a-z0-9]+(?:_[a-z0-9]+)*", text.lower()) if w not in _STOP]


class BM25:
    """Okapi BM25 keyword scoring (Robertson and Zaragoza, 2009), with Lucene's idf log(1 + (N - n + 0.5) /
    (n + 0.5)), which no word makes negative (their RSJ weight is negative for words in over half the documents)."""

    def __init__(self, documents: list[str], k1: float = 1.5, b: float = 0.75):
        if isinstance(documents, str) or not isinstance(documents, (list, tuple)) or not documents \
                or not all(isinstance(d, str) for d in documents):
            raise InputError("BM25 indexes a non-empty list of strings, e.g. BM25(['the cat sat', 'a dog ran']); "
                             f"got {type(documents).__name__}.")
        self.docs = [Counter(terms(d)) for d in documents]
        self.lengths = np.array([sum(d.values()) for d in self.docs], dtype=float)
        if not self.lengths.sum():
            raise InputError("every document is empty once common words are left out: nothing to index.")
        self.average = self.lengths.mean()
        holding = Counter(t for d in self.docs for t in d)                    # documents holding each term
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - m + 0.5) / (m + 0.5)) for t, m in holding.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> np.ndarray:
        """One score per document: rare query words that a short document repeats score most."""
        out = np.zeros(len(self.docs))
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.average)   # (N,)
        for t in set(terms(query)):
            tf = np.array([d.get(t, 0) for d in self.docs], dtype=float)
            out += self.idf.get(t, 0.0) * tf * (self.k1 + 1) / (tf + norm)
        return out


def relevant_passages(passages: list[dict], sections: list[tuple]) -> set[int]:
    """Indices of the passages in one of ``sections``: (chapter, heading), or (chapter, heading, phrase) for
    only the passages of that section that hold the phrase."""
    found = set()
    for gold in sections:
        if not isinstance(gold, (tuple, list)) or len(gold) not in (2, 3):
            raise InputError(f"each gold entry is (chapter, heading) or (chapter, heading, phrase), e.g. "
                             f"(7, 'The causal mask'); got {gold!r}.")
        chapter, section, phrase = (*gold, "")[:3]
        found |= {i for i, p in enumerate(passages)
                  if (p["chapter"], p["section"]) == (chapter, section) and phrase in p["text"]}
    return found


def recall_at_k(ranked: list[list[int]], relevant: list[set[int]], k: int) -> float:
    """Share of questions with at least one relevant document among the first ``k`` returned."""
    k = validate.whole_number(k, "k", minimum=1)
    if len(ranked) != len(relevant) or not ranked:
        raise InputError(f"one ranking per question: {len(ranked)} rankings for {len(relevant)} questions.")
    return float(np.mean([bool(set(list(r)[:k]) & set(rel)) for r, rel in zip(ranked, relevant)]))


def chance_recall(n_documents: int, relevant: list[set[int]], k: int) -> float:
    """Expected recall@k of a random ranking: 1 - C(N - r, k) / C(N, k) for a question with r relevant of N,
    averaged over the questions."""
    n = validate.whole_number(n_documents, "n_documents", minimum=1)
    k = min(validate.whole_number(k, "k", minimum=1), n)
    if not relevant:
        raise InputError("chance_recall needs the relevant passages of at least one question.")
    return float(np.mean([1 - math.comb(n - len(r), k) / math.comb(n, k) for r in relevant]))


def paraphrase_verdict(lost: dict[str, int], found_own: dict[str, int], k: int) -> str:
    """In words: which method loses more questions when the chapter's words are swapped for a paraphrase.
    ``found_own``: questions each method finds (at ``k``) in the chapter's words; ``lost``: how many of those
    it no longer finds when the same question is paraphrased. Keys: the two methods' names, cosine first."""
    (a, b) = list(lost)
    text = (f"of the questions each finds at {k} in the chapter's words, {a} loses {lost[a]} of {found_own[a]} "
            f"and {b} {lost[b]} of {found_own[b]} when they are paraphrased")
    if lost[a] == lost[b]:
        return text + ": paraphrasing costs the two the same number of questions here"
    if abs(lost[a] - lost[b]) <= 2:
        return text + "; one or two questions either way is too few to tell the two apart"
    fewer, more = (a, b) if lost[a] < lost[b] else (b, a)
    expected = "as expected of a model trained on meaning" if fewer == a else "against what one would expect"
    return text + f": {fewer} loses fewer, {expected}, by {abs(lost[a] - lost[b])} question" + \
        ("s" if abs(lost[a] - lost[b]) != 1 else "")


def sentences(text: str) -> list[str]:
    """The sentences of a paragraph (split after . ! ? followed by a space and a capital), leaving out those
    that lost a glued number (they hold GAP) or held math (its plain symbols would read as broken)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text)
            if len(s.split()) >= 4 and GAP not in s and not MATH & set(s)]


def extractive_answer(query_vector: np.ndarray, passages: list[dict],
                      embed_fn: Callable[[list[str]], np.ndarray]) -> tuple[str, dict]:
    """The sentence of ``passages`` nearest the query (cosine), and the passage it comes from."""
    if any(not isinstance(p, dict) or "text" not in p for p in passages):
        raise InputError("each passage is a dict with a 'text' (and its 'chapter' and 'section'), as "
                         "course_passages() returns.")
    candidates = [(s, p) for p in passages for s in sentences(p["text"])]
    if not candidates:
        raise InputError("no sentence to answer from: give at least one passage with a sentence free of math and of "
                         "glued numbers.")
    vectors = embed_fn([s for s, _ in candidates])                # (S, C)
    best, _ = top_k_cosine(query_vector, vectors, k=1)
    return candidates[best[0]]


def answer_prompt(question: str, texts: list[str], tokenizer=None, max_tokens: int = 512) -> str:
    """A prompt for a generative answer: the question FIRST, then the retrieved ``texts`` as context, cut to fit
    ``max_tokens`` of ``tokenizer`` (a tokenizer truncates the end, which must never be the question)."""
    if not isinstance(question, str) or not question.strip():
        raise InputError("answer_prompt needs the question as a non-empty string.")
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts is a list of passage strings, e.g. [p['text'] for p in found].")
    head = f"Answer the question from the context.\nQuestion: {question}\nContext: "
    context = " ".join(texts)
    if tokenizer is not None:
        room = max(validate.whole_number(max_tokens, "max_tokens", minimum=8) - len(tokenizer(head)["input_ids"]), 0)
        ids = tokenizer(context, add_special_tokens=False)["input_ids"][:room]
        context = tokenizer.decode(ids, skip_special_tokens=True)
    return head + context


def seq2seq(model: str, text: str, max_new_tokens: int = 60, num_beams: int = 2, device: str = "cpu") -> str:
    """Encoder–decoder generation (T5, BART) through ``generate``, from a hub name or a saved folder: the
    ``summarization`` pipeline is gone from transformers 5, and this works on 4 and 5."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    network = AutoModelForSeq2SeqLM.from_pretrained(model).to(device).eval()
    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=512).to(device)
    inputs.pop("token_type_ids", None)                     # BERT-style tokenizers add them; encoder–decoders do not
    output = network.generate(**inputs, max_new_tokens=validate.whole_number(max_new_tokens, "max_new_tokens",
                                                                             minimum=1), num_beams=num_beams)
    return tokenizer.decode(output[0], skip_special_tokens=True)


def write_packaged(book: Path | None = None) -> Path:
    """Refresh ``attnlab/data/course_passages.json`` from the book folder."""
    passages = course_passages(book if book is not None else _root_book())
    PACKAGED.parent.mkdir(exist_ok=True)
    PACKAGED.write_text(json.dumps(passages, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return PACKAGED


if __name__ == "__main__":
    if sys.argv[1:] == ["write"]:
        print(f"wrote {write_packaged()}")
    else:
        print("usage: python -m attnlab.retrieval write")
