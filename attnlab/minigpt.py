"""The course's mini-GPT: a character-level GPT trained on Shakespeare's plays.

- :class:`CharTokenizer` turns text into one id per character and back.
- :func:`shakespeare_splits` gives the plays as ids, the first 90 % for training and the last
  10 % (whole plays the model never trains on) for validation.
- :func:`train_minigpt` trains a :class:`~attnlab.gpt.GPT` with the course's trainer and records,
  at each evaluation, the validation loss and every head's previous-token and induction score.
- The trained model is saved as a GPT-2 folder that transformers loads (``save``), so the model
  registry serves it as ``load("minigpt")`` to every explorer; :func:`gpt_from_loaded` turns it
  back into the course's own GPT for generation.

The shipped checkpoint is reproduced by ``python -m attnlab.minigpt``, which prints its
settings, its tokens per second and its final validation loss.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from attnlab import validate
from attnlab.errors import InputError
from attnlab.gpt import GPT, GPTConfig
from attnlab.train import History, TrainSettings, train

UNKNOWN = "<unk>"  #: the id for characters the plays never use (emoji, accents): id 0
CHECKPOINT = Path(__file__).parent / "checkpoints" / "minigpt"


class CharTokenizer:
    """One id per character; id 0 stands for any character outside the vocabulary."""

    def __init__(self, chars: list[str]):
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise InputError("chars must be distinct single characters.")
        self.chars = [UNKNOWN, *chars]
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The vocabulary of ``text``: its distinct characters, sorted."""
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Text → ids (unknown characters → 0)."""
        if not isinstance(text, str):
            raise InputError(f"text must be a string, not {type(text).__name__}.")
        return [self.index.get(c, 0) for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """Text → ids as a NumPy array, fast for millions of characters."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table = np.zeros(max(map(ord, self.chars[1:])) + 1, dtype=np.int64)
        table[[ord(c) for c in self.chars[1:]]] = np.arange(1, len(self.chars))
        inside = codes < len(table)
        return np.where(inside, table[np.minimum(codes, len(table) - 1)], 0)

    def decode(self, ids) -> str:
        """Ids → text (id 0 shows as �)."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join("\ufffd" if i == 0 else self.chars[i] for i in ids)

    def to_transformers(self, max_length: int):
        """The same tokenizer as a transformers fast tokenizer (what the model registry loads)."""
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        core = Tokenizer(models.WordLevel(self.index, unk_token=UNKNOWN))
        core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
        core.decoder = decoders.Fuse()  # join characters back without spaces
        return PreTrainedTokenizerFast(tokenizer_object=core, unk_token=UNKNOWN, model_max_length=max_length)


@dataclass
class Splits:
    """The plays as ids: training and validation parts, and the tokenizer."""

    train: torch.Tensor  # (N_train,) int64
    val: torch.Tensor  # (N_val,) int64
    tokenizer: CharTokenizer


def shakespeare_splits(val_fraction: float = 0.1, tokenizer: CharTokenizer | None = None) -> Splits:
    """All the plays as character ids; the last ``val_fraction`` (whole plays, unseen in training) for validation."""
    from attnlab.corpus import shakespeare

    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise InputError(f"val_fraction must be a number between 0 and 1, such as 0.1, got {val_fraction!r}.")
    text = shakespeare()
    tokenizer = tokenizer or CharTokenizer.from_text(text)
    ids = torch.from_numpy(tokenizer.encode_array(text))
    cut = int(len(ids) * (1 - val_fraction))
    return Splits(ids[:cut], ids[cut:], tokenizer)


def random_windows(ids: torch.Tensor, batch_size: int, block_size: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows: inputs (B, T) and targets (B, T), the same text one character later."""
    starts = torch.randint(0, len(ids) - block_size - 1, (batch_size, 1), generator=generator)
    chunk = ids[(starts + torch.arange(block_size + 1)).to(ids.device)]  # (B, T + 1), where ids live
    return chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def validation_loss(model: GPT, ids: torch.Tensor, n_windows: int = 128, block_size: int | None = None,
                    batch_size: int = 32, seed: int = 1234) -> float:
    """Mean next-character loss (nats) over the same ``n_windows`` windows of ``ids`` each time."""
    block_size = block_size or model.config.block_size
    device = model.token_embedding.weight.device
    x, y = random_windows(ids, n_windows, block_size, torch.Generator().manual_seed(seed))
    total = 0.0
    for start in range(0, n_windows, batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        total += model(xb, yb).loss.item() * len(xb)
    return total / n_windows


def repeated_random_chars(vocab_size: int, period: int = 32, batch: int = 8, seed: int = 0) -> torch.Tensor:
    """(batch, 2·period) ids: random characters (no repeats inside a copy), then the same again."""
    rng = np.random.default_rng(seed)
    period = min(period, vocab_size - 1)
    rows = [rng.choice(np.arange(1, vocab_size), size=period, replace=False) for _ in range(batch)]
    half = torch.tensor(np.stack(rows))
    return torch.cat([half, half], dim=1)


@torch.no_grad()
def head_scores(model: GPT, ids: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Every head's previous-token and induction score, (layers, heads) each, on repeated random characters.

    Induction: at the second copy, the weight on the character that followed the same character
    in the first copy; previous token: the weight on the character just before (both averaged
    over the second copy's queries, as :mod:`attnlab.patterns` scores them).
    """
    from attnlab.patterns import induction_scores

    device = model.token_embedding.weight.device
    ids = repeated_random_chars(model.config.vocab_size, period=min(32, model.config.block_size // 2)) if ids is None else ids
    period = ids.size(1) // 2
    maps = model(ids.to(device), return_attention=True).attentions.float().mean(dim=1).cpu().numpy()  # (L, H, T, T)
    queries = np.arange(period, 2 * period)  # the second copy: the same queries for both scores
    return {"induction": induction_scores(maps, 0, period), "previous token": maps[..., queries, queries - 1].mean(-1)}


def chance_level(period: int) -> float:
    """The induction (or previous-token) score of a head that spreads its attention evenly over what it may see."""
    return float(np.mean([1 / (q + 1) for q in range(period, 2 * period)]))


@torch.no_grad()
def loss_by_position(model: GPT, ids: torch.Tensor, n_windows: int = 128, batch_size: int = 32,
                     seed: int = 1234) -> np.ndarray:
    """Mean loss (nats) at each position 0..T-1 of the same full-length windows: how much the context helps."""
    device = model.token_embedding.weight.device
    x, y = random_windows(ids, n_windows, model.config.block_size, torch.Generator().manual_seed(seed))
    total = torch.zeros(model.config.block_size)
    for start in range(0, n_windows, batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        logits = model(xb).logits.float()  # (B, T, vocab)
        losses = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none")  # (B, T)
        total += losses.sum(0).cpu()
    return (total / n_windows).numpy()


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the shipped checkpoint."""

    model: GPTConfig = field(default_factory=lambda: GPTConfig(vocab_size=83, block_size=128, n_layer=3, n_head=4,
                                                               n_embd=128, dropout=0.0))
    # Muon for the matrices inside the blocks: further in five CPU minutes than AdamW alone
    # (benchmarks/minigpt_training.py --only budget, with and without --optimizer adamw).
    settings: TrainSettings = TrainSettings(steps=5000, lr=3e-3, min_lr=1e-4, warmup_steps=100, eval_every=100,
                                            optimizer="muon")
    batch_size: int = 16  # small batches, more steps: what got furthest in a fixed time on two CPU cores


@dataclass
class TrainedGPT:
    """A trained mini-GPT and what its run measured."""

    model: GPT
    tokenizer: CharTokenizer
    history: History
    scores: list[dict] = field(default_factory=list)  # per evaluation: step, and each head's scores
    recipe: Recipe | None = None


def train_minigpt(recipe: Recipe = Recipe(), splits: Splits | None = None, device: str | None = None,
                  progress: bool = True, desc: str = "training the mini-GPT") -> TrainedGPT:
    """Train a mini-GPT on the plays; at each evaluation record the validation loss and the head scores."""
    from attnlab.device import pick_device

    splits = splits or shakespeare_splits()
    device = validate.device(device) or torch.device(pick_device())
    config = recipe.model
    if config.vocab_size != splits.tokenizer.vocab_size:
        config = GPTConfig(**{**asdict(config), "vocab_size": splits.tokenizer.vocab_size})
    torch.manual_seed(recipe.settings.seed)
    model = GPT(config).to(device)
    sampler = torch.Generator().manual_seed(recipe.settings.seed)
    probe = repeated_random_chars(config.vocab_size, period=min(32, config.block_size // 2))
    scores: list[dict] = []

    train_ids = splits.train.to(device)  # on a GPU the text lives there: no copy per step

    def next_batch():
        return random_windows(train_ids, recipe.batch_size, config.block_size, sampler)

    def loss_on(net, batch):
        return net(*batch).loss

    def evaluate(net):
        found = head_scores(net, probe)
        scores.append({name: np.round(value.astype(float), 4).tolist() for name, value in found.items()})
        return {"val_loss": validation_loss(net, splits.val)}

    history = train(model, loss_on, next_batch, recipe.settings, evaluate, progress, desc)
    for row, found in zip(history.evals, scores):
        found["step"] = row["step"]
    return TrainedGPT(model, splits.tokenizer, history, scores, recipe)


# ------------------------------------------------------------ saving as a GPT-2 folder


def _gpt2_names(n_layer: int) -> list[tuple[str, str, bool]]:
    """(our name, GPT-2's name, stored transposed?) of every tensor but the packed q/k/v projection.

    GPT-2 keeps its linear layers as ``Conv1D``, whose weight is the transpose of ``nn.Linear``'s.
    """
    names = [("token_embedding.weight", "wte.weight", False), ("position_embedding.weight", "wpe.weight", False),
             ("final_norm.weight", "ln_f.weight", False), ("final_norm.bias", "ln_f.bias", False)]
    layers = {"attention.out_proj": "attn.c_proj", "feed_forward.expand": "mlp.c_fc",
              "feed_forward.contract": "mlp.c_proj", "norm1": "ln_1", "norm2": "ln_2"}
    for i in range(n_layer):
        for mine, theirs in layers.items():
            linear = not mine.startswith("norm")
            names += [(f"blocks.{i}.{mine}.weight", f"h.{i}.{theirs}.weight", linear),
                      (f"blocks.{i}.{mine}.bias", f"h.{i}.{theirs}.bias", False)]
    return names


def to_transformers(model: GPT):
    """The same network as a transformers ``GPT2LMHeadModel`` (weights copied; GPT-2 stores them transposed)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    if not c.bias:
        raise InputError("only a GPT with biases (bias=True) has a GPT-2 twin.")
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
                                    n_layer=c.n_layer, n_head=c.n_head, activation_function="gelu",
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                                    bos_token_id=None, eos_token_id=None, tie_word_embeddings=True))
    ours = model.state_dict()
    theirs = {"transformer." + name: ours[mine].T if transposed else ours[mine]
              for mine, name, transposed in _gpt2_names(c.n_layer)}
    for i in range(c.n_layer):
        p, h = f"blocks.{i}.attention.", f"transformer.h.{i}.attn.c_attn."
        theirs[h + "weight"] = torch.cat([ours[p + f"{n}_proj.weight"] for n in "qkv"]).T  # (C, 3C)
        theirs[h + "bias"] = torch.cat([ours[p + f"{n}_proj.bias"] for n in "qkv"])
    theirs["lm_head.weight"] = theirs["transformer.wte.weight"]
    hf.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in theirs.items()})
    return hf.eval()


def from_transformers(hf_model) -> GPT:
    """The course's GPT with the weights of a GPT-2-style transformers model (``GPT2Model`` or ``GPT2LMHeadModel``)."""
    core = getattr(hf_model, "transformer", hf_model)
    hc = core.config
    if getattr(hc, "model_type", "") != "gpt2":
        raise InputError(f"only GPT-2-style models can become the course's GPT, not {getattr(hc, 'model_type', '?')!r}.")
    gpt = GPT(GPTConfig(vocab_size=hc.vocab_size, block_size=hc.n_positions, n_layer=hc.n_layer, n_head=hc.n_head,
                        n_embd=hc.n_embd, dropout=0.0))
    theirs = core.state_dict()
    ours = {mine: theirs[name].T if transposed else theirs[name] for mine, name, transposed in _gpt2_names(hc.n_layer)}
    d = hc.n_embd
    for i in range(hc.n_layer):
        p, h = f"blocks.{i}.attention.", f"h.{i}.attn.c_attn."
        weight, bias = theirs[h + "weight"].T, theirs[h + "bias"]  # (3C, C), (3C,): q, k, v stacked
        for j, n in enumerate("qkv"):
            ours[p + f"{n}_proj.weight"] = weight[j * d:(j + 1) * d]
            ours[p + f"{n}_proj.bias"] = bias[j * d:(j + 1) * d]
    ours["lm_head.weight"] = ours["token_embedding.weight"]
    gpt.load_state_dict({k: v.detach().float().cpu().contiguous() for k, v in ours.items()})
    return gpt.to(next(core.parameters()).device).eval()


def gpt_from_loaded(loaded) -> GPT:
    """The course's GPT from ``load("minigpt")`` (or any loaded GPT-2-style model): ready to generate."""
    from attnlab.models import as_loaded

    return from_transformers(as_loaded(loaded).model)


def tokenizer_from_loaded(loaded) -> CharTokenizer:
    """The :class:`CharTokenizer` of ``load("minigpt")`` (or another character model saved by :func:`save`)."""
    from attnlab.models import as_loaded

    vocab = as_loaded(loaded).tokenizer.get_vocab()  # {character: id}
    by_id = sorted(vocab, key=vocab.get)
    if by_id[0] != UNKNOWN or any(len(c) != 1 for c in by_id[1:]):
        raise InputError("this model's tokenizer is not a character tokenizer saved by attnlab.minigpt.")
    return CharTokenizer(by_id[1:])


def save(trained: TrainedGPT, folder: str | Path, half: bool = False) -> Path:
    """Write a transformers folder (config, weights, tokenizer) and ``training.json`` (the run's measurements)."""
    folder = Path(folder)
    hf = to_transformers(trained.model)
    if half:  # float16 halves the file; loading casts back to float32
        hf = hf.half()
    from attnlab.models import _quiet_transformers

    _quiet_transformers()  # no progress bar for writing one small file
    hf.save_pretrained(folder, safe_serialization=True)
    trained.tokenizer.to_transformers(trained.model.config.block_size).save_pretrained(folder)
    for path in folder.iterdir():
        path.chmod(0o644)  # safetensors writes its file private; a package's data must be readable by all
    h = trained.history
    log = {"recipe": _recipe_dict(trained.recipe), "tokens_per_second": round(h.tokens_per_second, 1),
           "seconds": round(h.seconds, 1), "tokens": h.tokens, "precision": h.precision, "optimizer": h.optimizer,
           "device": _device_name(trained.model),
           "torch": torch.__version__, "evals": h.evals, "head_scores": trained.scores,
           "losses": [round(x, 4) for x in h.losses]}
    (folder / "training.json").write_text(json.dumps(log, indent=1))
    return folder


def training_log(folder: str | Path = CHECKPOINT) -> dict:
    """What the shipped checkpoint's run measured (recipe, tokens/s, losses, head scores over training)."""
    path = Path(folder) / "training.json"
    if not path.exists():
        raise InputError(f"no training log at {path}: train and save a mini-GPT first (python -m attnlab.minigpt).")
    return json.loads(path.read_text())


def optimizer_race(folder: str | Path = CHECKPOINT) -> dict:
    """Five minutes of the recipe with AdamW and with Muon, as benchmarks/minigpt_training.py --race recorded them."""
    path = Path(folder) / "optimizer_race.json"
    if not path.exists():
        raise InputError(f"no optimizer race at {path}: run benchmarks/minigpt_training.py --only budget --race {path}.")
    return json.loads(path.read_text())


def _recipe_dict(recipe: Recipe | None) -> dict:
    return {} if recipe is None else {"model": asdict(recipe.model), "settings": asdict(recipe.settings),
                                      "batch_size": recipe.batch_size}


def _device_name(model: GPT) -> str:
    device = model.token_embedding.weight.device
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def checkpoint_folder() -> Path:
    """The shipped checkpoint's folder; a friendly error if it is missing."""
    if not (CHECKPOINT / "config.json").exists():
        from attnlab.errors import ModelNotFound

        raise ModelNotFound(f"the mini-GPT checkpoint is missing from {CHECKPOINT}: run `python -m attnlab.minigpt` "
                            "to train it (about ten minutes on a laptop).")
    return CHECKPOINT


def main(argv: list[str] | None = None) -> None:
    """Train the shipped checkpoint from its recipe; print its settings, tokens/s and final validation loss."""
    parser = argparse.ArgumentParser(prog="python -m attnlab.minigpt", description=main.__doc__)
    parser.add_argument("--out", default="minigpt-checkpoint",
                        help="folder to write (default: ./minigpt-checkpoint; load it with load('./minigpt-checkpoint'); "
                             f"the shipped one was written to {CHECKPOINT.relative_to(CHECKPOINT.parents[2])})")
    parser.add_argument("--steps", type=int, help="override the recipe's number of steps")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when there is a GPU, where it trains in bf16 or fp16; "
                                         "the shipped checkpoint was trained on the CPU in float32)")
    args = parser.parse_args(argv)
    recipe = Recipe()
    if args.steps:
        recipe = Recipe(recipe.model, recipe.settings.changed(steps=args.steps), recipe.batch_size)
    print("recipe:", json.dumps(_recipe_dict(recipe)))
    started = time.perf_counter()
    trained = train_minigpt(recipe, device=args.device)
    folder = save(trained, args.out)
    h = trained.history
    print(f"trained {len(h.steps)} steps in {h.seconds:.0f} s on {_device_name(trained.model)} ({h.precision}): "
          f"{h.tokens_per_second:,.0f} tokens/s; final validation loss {h.evals[-1]['val_loss']:.3f} nats/char; "
          f"saved to {folder} ({sum(f.stat().st_size for f in folder.iterdir()) / 1e6:.2f} MB) "
          f"in {time.perf_counter() - started:.0f} s in all.")


if __name__ == "__main__":
    main()
