"""How big well-known Transformers are: parameter counts from their published configs, a closed formula for
the same count, and the bytes their weights take at fp32 / fp16 / int8."""

from __future__ import annotations

import torch

from attnlab import validate
from attnlab.errors import InputError

# Published configurations (the model cards' config.json), as keyword arguments of the transformers class.
# The defaults of BertConfig, DistilBertConfig, GPT2Config, T5Config and LlamaConfig are these models' sizes;
# they are written out so that a change of defaults in a later transformers cannot change the table.
PUBLISHED = {
    "BERT-base": ("bert", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                               intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)),
    "BERT-large": ("bert", dict(vocab_size=30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                intermediate_size=4096, max_position_embeddings=512, type_vocab_size=2)),
    "DistilBERT": ("distilbert", dict(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                                      max_position_embeddings=512)),
    "GPT-2 small": ("gpt2", dict(vocab_size=50257, n_embd=768, n_layer=12, n_head=12, n_positions=1024)),
    "GPT-2 XL": ("gpt2", dict(vocab_size=50257, n_embd=1600, n_layer=48, n_head=25, n_positions=1024)),
    "T5-small": ("t5", dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8)),
    "Llama-2-7B": ("llama", dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                 num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)),
}
# What each model's paper printed (rounded): Devlin et al. 2019, Sanh et al. 2019, Radford et al. 2019 (117M was
# later recounted as 124M by OpenAI), Raffel et al. 2020, Touvron et al. 2023.
PAPER_SAYS = {"BERT-base": "110M", "BERT-large": "340M", "DistilBERT": "66M", "GPT-2 small": "117M",
              "GPT-2 XL": "1542M", "T5-small": "60M", "Llama-2-7B": "7B"}

_CLASSES = {"bert": ("BertConfig", "BertModel"), "distilbert": ("DistilBertConfig", "DistilBertModel"),
            "gpt2": ("GPT2Config", "GPT2LMHeadModel"), "t5": ("T5Config", "T5ForConditionalGeneration"),
            "llama": ("LlamaConfig", "LlamaForCausalLM")}


def config_of(name: str) -> "transformers.PretrainedConfig":
    """The transformers config of a model in ``PUBLISHED``."""
    import transformers

    if name not in PUBLISHED:
        raise InputError(f"No published config called {name!r}; known: {', '.join(PUBLISHED)}.")
    family, values = PUBLISHED[name]
    return getattr(transformers, _CLASSES[family][0])(**values)


def count_from_config(config: "transformers.PretrainedConfig") -> int:
    """Parameters of the model built from ``config`` on the meta device (no memory used; shared weights once)."""
    import transformers

    family = getattr(config, "model_type", None)
    if family not in _CLASSES:
        raise InputError(f"count_from_config knows {', '.join(_CLASSES)} configs, not {family!r}.")
    with torch.device("meta"):
        model = getattr(transformers, _CLASSES[family][1])(config)
    return sum(p.numel() for p in model.parameters())   # .parameters() yields a tied weight once


def formula_count(config: "transformers.PretrainedConfig") -> int | None:
    """The same count from a closed formula (BERT, DistilBERT, GPT-2, Llama); None for a family it does not cover."""
    family = config.model_type
    if family in ("bert", "distilbert"):
        bert = family == "bert"
        c = config.hidden_size if bert else config.dim
        f = config.intermediate_size if bert else config.hidden_dim
        layers = config.num_hidden_layers if bert else config.n_layers
        per_layer = 4 * c * c + 4 * c + 2 * c * f + f + c + 2 * 2 * c        # Q K V O, FFN in and out, 2 LayerNorms
        positions = config.max_position_embeddings * c
        embeddings = config.vocab_size * c + positions + (config.type_vocab_size * c if bert else 0) + 2 * c
        pooler = c * c + c if bert else 0
        return layers * per_layer + embeddings + pooler
    if family == "gpt2":
        c, layers = config.n_embd, config.n_layer
        per_layer = 4 * c * c + 4 * c + 2 * c * 4 * c + 4 * c + c + 2 * 2 * c
        return layers * per_layer + config.vocab_size * c + config.n_positions * c + 2 * c   # head tied to wte
    if family == "llama":
        c, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
        kv = c // config.num_attention_heads * config.num_key_value_heads
        per_layer = 2 * c * c + 2 * c * kv + 3 * c * f + 2 * c                 # no biases; gate, up, down; 2 RMSNorms
        return layers * per_layer + 2 * config.vocab_size * c + c              # embedding and head untied
    return None


def rule_of_thumb(layers: int, width: int, vocab: int) -> int:
    """12·L·C² + V·C: the attention and feed-forward matrices of a GPT-like model, plus the token embedding."""
    return 12 * layers * width**2 + vocab * width


def weight_bytes(n_parameters: int, dtype: str) -> int:
    """Bytes the weights take: 4 per parameter in fp32, 2 in fp16/bf16, 1 in int8 (scales not counted)."""
    per = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
    if dtype not in per:
        raise InputError(f"dtype must be one of {', '.join(per)}, not {dtype!r}.")
    return validate.whole_number(n_parameters, "n_parameters") * per[dtype]


def int8_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row absmax int8: integers q (R, C) in [-127, 127] and scales (R, 1) with weight ≈ q · scale."""
    weight = validate.tensor(weight, "weight", min_dims=2)
    scale = weight.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127      # (R, 1)
    q = torch.round(weight / scale).clamp(-127, 127).to(torch.int8)             # (R, C)
    return q, scale


def int8_error(weight: torch.Tensor) -> float:
    """The largest |weight − dequantised weight| divided by its row's scale: at most 0.5 by construction."""
    q, scale = int8_rows(weight)
    return float(((weight - q.float() * scale).abs() / scale).max())


def human(n: float) -> str:
    """A count as 22.7 M or 1.56 B."""
    n = float(n)
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def gib(n_bytes: float) -> str:
    """Bytes as GiB (or MiB below one GiB)."""
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"

