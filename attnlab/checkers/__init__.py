"""Exercise checkers: call them on your own implementation for instant, friendly feedback.

    >>> from attnlab.checkers import check_softmax
    >>> check_softmax(my_softmax)          # prints a verdict; returns a CheckResult

Each checker runs a few targeted cases and stops at the first that fails, with a hint.
The verdict is printed in a script; in a notebook the returned result displays itself
(pass ``verbose=True`` to print it anyway, for example inside a loop).
It never shows a traceback from inside the checker: if your function raises, you are told
which case and what it raised. The returned :class:`CheckResult` is truthy when all passed.

One module per topic: ``basics`` (chapters 1–4), ``heads`` (5), ``block`` (6), ``decoder`` (7),
``training`` (8), ``generation`` (9), ``pretrained`` (10), ``cost`` (11), ``tasks`` (12), ``pitfalls`` (13).
"""

from attnlab.attention import multi_head_attention_np
from attnlab.checkers.basics import (
    check_attention,
    check_causal_mask,
    check_cosine_similarity,
    check_multi_head,
    check_positional_encoding,
    check_rnn_forward,
    check_softmax,
)
from attnlab.checkers.block import check_block, check_feed_forward, check_layer_norm
from attnlab.checkers.core import NOT_WRITTEN, CheckResult, Mismatch
from attnlab.checkers.cost import check_cache_step, check_sliding_window_mask
from attnlab.checkers.decoder import check_cross_attention, check_padding_mask
from attnlab.checkers.generation import check_generation, check_sampling
from attnlab.checkers.heads import check_merge_heads, check_multi_head_torch, check_split_heads
from attnlab.checkers.pitfalls import (
    check_future_leak,
    check_mean_pool,
    check_mha_mask,
    check_safe_fill,
    check_safe_softmax,
    check_scaled_scores,
)
from attnlab.checkers.pretrained import check_punctuation_score, check_rollout
from attnlab.checkers.tasks import (
    check_confusion,
    check_gpt2_parameters,
    check_int8_rows,
    check_recall_at_k,
    check_sentence_embedding,
    check_top_k,
)
from attnlab.checkers.training import check_training_step, check_transformer_lr
from attnlab.positional import sinusoidal_encoding

__all__ = [
    "NOT_WRITTEN", "CheckResult", "Mismatch", "check_attention", "check_block", "check_causal_mask",
    "check_cosine_similarity", "check_cross_attention", "check_feed_forward", "check_generation", "check_layer_norm",
    "check_merge_heads", "check_multi_head", "check_multi_head_torch", "check_padding_mask",
    "check_positional_encoding", "check_punctuation_score", "check_rnn_forward", "check_rollout",
    "check_sampling", "check_softmax", "check_split_heads",
    "check_training_step", "check_transformer_lr", "check_cache_step", "check_sliding_window_mask",
    "check_future_leak", "check_mean_pool", "check_mha_mask", "check_safe_fill", "check_safe_softmax",
    "check_scaled_scores",
    "check_confusion", "check_gpt2_parameters", "check_int8_rows", "check_recall_at_k", "check_sentence_embedding",
    "check_top_k",
    "multi_head_attention_np", "sinusoidal_encoding",
]
