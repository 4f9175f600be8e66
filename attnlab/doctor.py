"""Check a model and a setup for the usual mistakes: each check measures, none assumes.

    >>> from attnlab import doctor
    >>> doctor.check("minigpt")       # future leak, order, padding, attention rows: a pass/fail table
    >>> doctor.environment()          # versions, device, Colab or not, GPU memory
    >>> doctor.check(doctor.without_causal_mask(gpt))   # a broken twin, to see a check fail

A model may be a course name ("minilm", "minigpt"), what ``attnlab.models.load`` returns, a
transformers model, or the course's :class:`~attnlab.gpt.GPT`.
"""

from __future__ import annotations

import copy
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from attnlab.errors import InputError

TOLERANCE = 1e-4  # a relative change below this is rounding, not information


# ------------------------------------------------------------------ running any model the same way


def _network(model):
    """The torch module inside ``model``, and whether it is the course's GPT."""
    from attnlab.gpt import GPT
    from attnlab.models import LoadedModel, load

    if isinstance(model, str):
        model = load(model)
    if isinstance(model, LoadedModel):
        model = model.model
    if isinstance(model, torch.nn.Module):
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise InputError(f"{type(model).__name__} is an encoder-decoder model (T5, BART…): doctor checks "
                             "encoder-only and decoder-only models, which run on input ids alone.")
        return model, isinstance(model, GPT)
    raise InputError(f"model must be a course name such as 'minigpt', what attnlab.models.load returns, a "
                     f"transformers model or an attnlab GPT, not {type(model).__name__}.")


def _vocab(net, is_gpt: bool) -> int:
    return net.config.vocab_size


def _device(net) -> torch.device:
    return next(net.parameters()).device


def _max_length(net, is_gpt: bool) -> int | None:
    """How many positions the model has, when its config says."""
    keys = ("block_size",) if is_gpt else ("max_position_embeddings", "n_positions")
    limits = [getattr(net.config, key, None) for key in keys]
    return next((int(limit) for limit in limits if isinstance(limit, int)), None)


def _checked_length(net, is_gpt: bool, length, extra: int = 0) -> int:
    """``length`` as a whole number ≥ 2 that, with ``extra`` more tokens, fits the model's positions."""
    from attnlab.validate import whole_number

    length = whole_number(length, "length", minimum=2)
    limit = _max_length(net, is_gpt)
    if limit is not None and length + extra > limit:
        raise InputError(f"length {length}{f' + {extra} pads' if extra else ''} is more than the model's "
                         f"{limit} positions: use a shorter length.")
    return length


def random_ids(model, length: int = 12, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """(batch, length) random token ids the model accepts (word pieces, not special tokens, for a large vocabulary)."""
    net, is_gpt = _network(model)
    vocab = _vocab(net, is_gpt)
    low = 1000 if vocab > 5000 else 1  # BERT's first thousand ids are [PAD], [unused…] and specials
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, vocab, (batch, length), generator=generator).to(_device(net))


def outputs(model, ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The model's last output for ``ids`` (B, T): logits when it has them, else hidden states, (B, T, ·)."""
    net, is_gpt = _network(model)
    with torch.no_grad():
        if is_gpt:
            return net(ids).logits.float()
        if attention_mask is None:
            attention_mask = torch.ones_like(ids)
        out = net(input_ids=ids, attention_mask=attention_mask)
        found = getattr(out, "logits", None)
        return (found if found is not None else out.last_hidden_state).float()


def _relative(change: torch.Tensor, reference: torch.Tensor) -> float:
    return float(change.abs().max() / reference.abs().max().clamp_min(1e-12))


# ------------------------------------------------------------------ the checks


def future_leak(model, length: int = 12, cut: int | None = None, seed: int = 0) -> float:
    """Largest change of the outputs before position ``cut`` when every token from ``cut`` on changes (relative)."""
    net, is_gpt = _network(model)
    length = _checked_length(net, is_gpt, length)
    cut = length // 2 if cut is None else cut
    if not isinstance(cut, int) or not 0 < cut < length:
        raise InputError(f"cut must be a position between 1 and {length - 1}, got {cut!r}.")
    ids = random_ids(model, length, seed=seed)
    changed = ids.clone()
    changed[:, cut:] = random_ids(model, length - cut, seed=seed + 1)  # (1, length - cut)
    before, after = outputs(model, ids), outputs(model, changed)
    return _relative(after[:, :cut] - before[:, :cut], before[:, :cut])


def order_blind(model, length: int = 12, seed: int = 0) -> float:
    """How far the model is from ignoring order: shuffle the tokens, un-shuffle the outputs, compare (relative).

    0 (up to rounding) means the outputs only move with their tokens: the model cannot see word order.
    """
    net, is_gpt = _network(model)
    length = _checked_length(net, is_gpt, length)
    ids = random_ids(model, length, seed=seed)
    order = torch.randperm(length, generator=torch.Generator().manual_seed(seed + 7)).to(ids.device)
    plain, shuffled = outputs(model, ids), outputs(model, ids[:, order])
    return _relative(shuffled - plain[:, order], plain)


def padding_drift(model, length: int = 8, pads: int = 5, use_mask: bool = True, seed: int = 0) -> float:
    """Change of a text's outputs when ``pads`` padding tokens follow it in a batch (relative).

    ``use_mask=False`` passes an all-ones attention mask, as code that forgets it does. The pads follow the
    text, so for a causal model the check is empty (``check`` reports it as not applicable), and the
    course's GPT, which takes no attention mask, is refused.
    """
    from attnlab.validate import whole_number

    net, is_gpt = _network(model)
    if is_gpt:
        raise InputError("the course's GPT takes no attention_mask, and pads after a text are invisible to its "
                         "causal mask: there is no padding mistake to measure.")
    pads = whole_number(pads, "pads", minimum=1)
    length = _checked_length(net, is_gpt, length, extra=pads)
    ids = random_ids(model, length, seed=seed)
    pad_id = getattr(net.config, "pad_token_id", None) or 0
    padded = torch.cat([ids, torch.full((1, pads), pad_id, dtype=ids.dtype, device=ids.device)], dim=1)
    alone = outputs(model, ids)
    mask = torch.ones_like(padded)
    if use_mask:
        mask[:, length:] = 0
    in_batch = outputs(model, padded, attention_mask=mask)
    return _relative(in_batch[:, :length] - alone, alone)


def attention_maps(model, length: int = 10, seed: int = 0):
    """The model's attention maps for random ids, one (B, H, T, T) tensor per layer; None when it returns none."""
    net, is_gpt = _network(model)
    ids = random_ids(model, length, seed=seed)
    with torch.no_grad():
        if is_gpt:
            return list(net(ids, return_attention=True).attentions)
        try:
            maps = net(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True).attentions
        except (ValueError, RuntimeError, TypeError):
            return None
    if not maps or any(m is None for m in maps):
        return None
    return list(maps)


def rows_sum_to_one(model, atol: float = 1e-4) -> bool | None:
    """Whether every attention row sums to 1 and is non-negative; None when the model returns no maps."""
    maps = attention_maps(model)
    if maps is None:
        return None
    return all(bool((m >= 0).all()) and bool(torch.allclose(m.sum(-1), torch.ones_like(m.sum(-1)), atol=atol))
               for m in maps)


@dataclass
class Finding:
    """One row of a check-up."""

    check: str
    measured: str
    expected: str
    ok: bool | None  # None: could not be measured


@dataclass
class Checkup:
    """What :func:`check` found, as a table."""

    model: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when no check failed (a check that could not run does not fail)."""
        return all(f.ok is not False for f in self.findings)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """The table as (check, measured, expected, verdict) strings."""
        mark = {True: "✓ pass", False: "✗ FAIL", None: "– not measured"}
        return [(f.check, f.measured, f.expected, mark[f.ok]) for f in self.findings]

    def __str__(self) -> str:
        rows = [("check", "measured", "expected", "verdict")] + self.rows()
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{self.model}"] + ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in self.rows())
        return (f"<p><b>{html.escape(self.model)}</b></p><table><tr><th>check</th><th>measured</th>"
                f"<th>expected</th><th>verdict</th></tr>{cells}</table>")


def _is_causal(model, net, is_gpt: bool) -> bool:
    from attnlab.models import LoadedModel

    if isinstance(model, LoadedModel):
        return model.causal
    if is_gpt:
        return True
    config = net.config
    names = [type(net).__name__, *(getattr(config, "architectures", None) or [])]
    return bool(getattr(config, "is_decoder", False)) or any("CausalLM" in n or "LMHead" in n for n in names) or \
        getattr(config, "model_type", "") in ("gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "qwen2",
                                              "qwen3", "phi", "phi3", "gemma", "gemma2", "olmo", "falcon")


def check(model, causal: bool | None = None, name: str | None = None) -> Checkup:
    """Measure the future leak, order, padding and attention rows of ``model``; a table of pass/fail."""
    net, is_gpt = _network(model)
    causal = _is_causal(model, net, is_gpt) if causal is None else causal
    label = name or (model if isinstance(model, str) else getattr(model, "name", type(net).__name__))
    report = Checkup(f"{label} ({'causal' if causal else 'bidirectional'})")
    leak = future_leak(model)
    if causal:
        report.findings.append(Finding("future leak", f"{leak:.1e}", f"< {TOLERANCE:g} (causal)", leak < TOLERANCE))
    else:
        report.findings.append(Finding("future leak", f"{leak:.1e}", "> 0 (an encoder sees both ways)",
                                       leak > TOLERANCE))
    blind = order_blind(model)
    report.findings.append(Finding("sees word order", f"{blind:.1e}", f"> {TOLERANCE:g}", blind > TOLERANCE))
    if causal:  # pads after a text are invisible to a causal model: nothing to measure
        report.findings.append(Finding("padding changes nothing", "n/a", "pads after the text: unseen (causal)",
                                       None))
    else:
        drift = padding_drift(model)
        report.findings.append(Finding("padding changes nothing", f"{drift:.1e}", f"< {TOLERANCE:g}",
                                       drift < TOLERANCE))
    rows = rows_sum_to_one(model)
    report.findings.append(Finding("attention rows sum to 1", "no maps returned" if rows is None else
                                   ("yes" if rows else "no"), "yes", rows))
    return report


# ------------------------------------------------------------------ broken twins


class _SeesTheFuture(nn.Module):
    """A block run without its causal mask, whatever its caller asks for."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x, mask=None, is_causal=False, need_weights=False):
        return self.block(x, mask=None, is_causal=False, need_weights=need_weights)


def without_causal_mask(gpt):
    """A copy of a course GPT whose blocks ignore the causal mask (a broken twin)."""
    from attnlab.gpt import GPT

    if not isinstance(gpt, GPT):
        raise InputError(f"without_causal_mask takes a course GPT (attnlab.gpt.GPT), not {type(gpt).__name__}.")
    twin = copy.deepcopy(gpt)
    twin.blocks = nn.ModuleList(_SeesTheFuture(block) for block in twin.blocks)
    return twin


def without_positions(model):
    """A copy of a course GPT or a BERT-like transformers model with its position embeddings set to zero."""
    net, is_gpt = _network(model)
    twin = copy.deepcopy(net)
    embeddings = getattr(twin, "embeddings", None)
    table = twin.position_embedding if is_gpt else getattr(embeddings, "position_embeddings", None)
    if table is None:
        raise InputError(f"{type(net).__name__} has no learnt position table to zero (RoPE models rotate instead).")
    with torch.no_grad():
        table.weight.zero_()
    return twin


# ------------------------------------------------------------------ the reader's setup


def _version(package: str) -> str:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:  # not installed, or broken metadata
        return "not installed"


def tested_with(root: str | Path | None = None) -> dict[str, str]:
    """The versions the course is tested with: requirements.txt's pins, and Colab's widget pins."""
    pins = {}
    try:  # the repository's root: where requirements.txt sits above this file
        folder = Path(root) if root else next(p for p in Path(__file__).resolve().parents
                                              if (p / "requirements.txt").is_file())
        for line in (folder / "requirements.txt").read_text().splitlines():
            text = line.split("#")[0].strip()
            if "==" in text:
                name, version = text.split("==", 1)
                pins[name.strip()] = version.strip()
    except Exception:  # a pip-installed attnlab has no requirements.txt
        pass
    pins.update({"plotly (Colab)": "5.24.1", "ipywidgets (Colab)": "7.7.1"})
    return pins


def environment() -> dict[str, str]:
    """Versions, device, Colab or not, GPU memory and offline mode, as strings; never raises."""
    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "attnlab", "numpy", "plotly", "ipywidgets"):
        found[package] = _version(package)
    found["colab"] = "yes" if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ else "no"
    found["offline (HF_HUB_OFFLINE)"] = os.environ.get("HF_HUB_OFFLINE", "not set")
    try:
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            found["device"] = f"cuda: {torch.cuda.get_device_name()}"
            found["GPU memory"] = f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"
            found["bf16"] = "yes" if torch.cuda.is_bf16_supported() else "no"
        else:
            found["device"] = "cpu (no GPU: in Colab, Runtime → Change runtime type → T4 GPU)"
            found["CPU threads"] = str(torch.get_num_threads())
    except Exception as error:  # a broken driver must not stop the report
        found["device"] = f"unknown ({type(error).__name__})"
    return found
