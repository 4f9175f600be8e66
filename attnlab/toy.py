"""A hand-made example small enough to check by eye: six words, four features each."""

from __future__ import annotations

import numpy as np

from attnlab.attention import self_attention_weights

TOKENS = ["the", "cat", "sat", "on", "the", "mat"]
FEATURES = ["animal", "place", "action", "grammar word"]

# Each row scores one word on the four features (0 = not at all, 2 = very).
# "cat" and "mat" share a little (both are nouns), "the" and "on" are grammar words.
VECTORS = np.array(
    [
        [0.0, 0.0, 0.0, 2.0],  # the
        [2.0, 0.5, 0.0, 0.0],  # cat
        [0.5, 0.0, 2.0, 0.0],  # sat
        [0.0, 1.0, 0.0, 1.5],  # on
        [0.0, 0.0, 0.0, 2.0],  # the
        [0.5, 2.0, 0.0, 0.0],  # mat
    ]
)


def toy_attention(temperature: float = 1.0) -> np.ndarray:
    """The (6, 6) self-attention weights of the toy sentence at a given temperature."""
    return self_attention_weights(VECTORS, temperature=temperature)
