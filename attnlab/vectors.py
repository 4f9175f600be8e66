"""Chapter 2: from text to vectors — subword tokens, ids, and the embedding table.

WordPiece comes from MiniLM's own tokenizer (the bert-base-uncased vocabulary); a BPE
tokenizer is trained here on any text with the ``tokenizers`` library. Embeddings are the
rows of MiniLM's real input embedding matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnlab import validate
from attnlab.errors import InputError
from attnlab.models import LoadedModel, as_loaded


@dataclass(frozen=True)
class Piece:
    """One token of a tokenized text: its text, its id, and the characters it came from."""

    text: str
    id: int
    start: int
    end: int


def _model(model: str | LoadedModel) -> LoadedModel:
    return as_loaded(model)


def wordpieces(text: str, model: str | LoadedModel = "minilm") -> list[Piece]:
    """Split ``text`` with the model's own tokenizer; special tokens ([CLS], [SEP]) left out."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("Give some text to tokenize, for example: tokenizers split unfamiliar words.")
    tokenizer = _model(model).tokenizer
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    return [Piece(t, i, s, e) for t, i, (s, e) in zip(tokens, encoding["input_ids"], encoding["offset_mapping"])]


def train_bpe(text: str, vocab_size: int = 2000, min_frequency: int = 2):
    """Train a byte-level BPE tokenizer on ``text`` (seconds on a play); returns a ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not isinstance(text, str):
        raise InputError(f"BPE learns its merges from text (a string), not {type(text).__name__}.")
    vocab_size = validate.whole_number(vocab_size, "vocab_size", minimum=1)
    min_frequency = validate.whole_number(min_frequency, "min_frequency", minimum=1)
    if not text.strip():
        raise InputError("BPE learns its merges from text: give it some (a play of Shakespeare works well).")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(text.splitlines(), trainer=trainer)
    return tokenizer


def embedding_table(model: str | LoadedModel = "minilm") -> np.ndarray:
    """The model's input embedding matrix, one row per vocabulary id: (vocab_size, d_model). Read-only.

    A model on the GPU is copied to the CPU once and the copy kept (until its weights change),
    so that calling this for every word does not copy the whole matrix each time.
    """
    lm = _model(model)
    weights = lm.model.get_input_embeddings().weight
    key = (weights.data_ptr(), weights._version, str(weights.device), weights.dtype, tuple(weights.shape))
    cached = getattr(lm, "_embedding_table", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    if weights.device.type == "cpu" and weights.dtype == torch.float32:
        table = weights.detach().numpy()  # shares memory with the model: no 47 MB copy per call
    else:
        table = weights.detach().float().cpu().numpy()
    table = table.view()
    table.flags.writeable = False  # writing into it would change the model
    lm._embedding_table = (key, table)
    return table


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of the angle between ``a`` (…, C) and each row of ``b`` (N, C): 1 same direction, 0 unrelated."""
    a = validate.numeric_array(a, "a")
    b = validate.numeric_array(b, "b")
    if b.ndim != 2 or a.shape[-1] != b.shape[-1]:
        raise InputError(f"b must be a matrix (N, C) of vectors as wide as a: a is {a.shape}, b is {b.shape}.")
    return (b @ a.T).T / (np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1) + 1e-12)


def token_id(word: str, model: str | LoadedModel = "minilm") -> int:
    """The id of ``word`` when it is a single token of the vocabulary; a clear error when it is not."""
    lm = _model(model)
    if not isinstance(word, str) or not word.strip():
        raise InputError(f"Give one word, such as 'king', not {word!r}.")
    pieces = wordpieces(word, lm)
    if len(pieces) != 1:
        raise InputError(f"“{word}” is not one token in {lm.name}'s vocabulary: it splits into "
                         f"{[p.text for p in pieces]}. Pick a common word.")
    return pieces[0].id


def nearest_neighbours(word: str, k: int = 8, model: str | LoadedModel = "minilm") -> list[tuple[str, float]]:
    """The ``k`` whole-word vocabulary entries whose embeddings point most nearly the same way as ``word``'s."""
    lm = _model(model)
    k = validate.whole_number(k, "k", minimum=1)
    table = embedding_table(lm)
    similarity = cosine_similarity(table[token_id(word, lm)], table)
    vocabulary = lm.tokenizer.convert_ids_to_tokens(range(len(table)))
    ranked = []
    for index in np.argsort(-similarity):
        token = vocabulary[index]
        if token != word and token.isalpha():  # skip the word itself, pieces (##ing) and [SPECIAL] tokens
            ranked.append((token, float(similarity[index])))
        if len(ranked) == k:
            break
    return ranked


def project_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal-component projection to 2-D: the points (N, 2) and the share of variance each axis keeps."""
    vectors = validate.numeric_array(vectors, "vectors", min_dims=2)
    if vectors.ndim != 2 or len(vectors) < 2 or vectors.shape[1] < 2:
        raise InputError(f"project_2d needs at least two vectors of at least two numbers, as a matrix (N, C); "
                         f"got shape {vectors.shape}.")
    centred = vectors - np.mean(vectors, axis=0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    explained = singular**2 / np.sum(singular**2)
    return centred @ directions[:2].T, explained[:2]
