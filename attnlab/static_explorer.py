"""The static explorer: real attention maps a reader can browse on the built site, no kernel.

During the book build, :func:`static_explorer` runs the model on a few prepared sentences
and writes everything the page needs into it: tokens, every layer's and head's weights
(8 bits each, plenty for colour), and the head patterns found. The site's script
``attnlab-explorer.js`` then draws it with plotly.js and redraws in the browser when the
reader picks another sentence, layer, head or view.
"""

from __future__ import annotations

import base64
import html
import json
import uuid
from collections.abc import Mapping

import numpy as np

from attnlab import render
from attnlab.errors import InputError
from attnlab.extraction import attend
from attnlab.figures import escape_labels
from attnlab.models import LoadedModel, as_loaded
from attnlab.patterns import find_heads

EXAMPLES = {
    "A cat, a mat, and 'it'": "The cat sat on the mat because it was tired.",
    "Two meanings of 'bank'": "She sat on the river bank and then walked to the bank to open an account.",
    "Subject and verb far apart": "The keys to the old wooden cabinet in the hallway are missing.",
    "A repeated phrase": "one fish two fish red fish blue fish one fish two fish",
    "What is 'it'? (32 tokens)": "The trophy did not fit into the brown suitcase because it was too big, "
                                 "so the movers carried the trophy and filled the suitcase with old books.",
}
VIEWS = ["one head", "all heads", "head view"]


def quantize(weights: np.ndarray) -> bytes:
    """Weights in [0, 1] as bytes 0..255 (display needs no more than 8 bits)."""
    return np.clip(np.rint(np.asarray(weights) * 255), 0, 255).astype(np.uint8).tobytes()


def explorer_payload(model: str | LoadedModel = "minilm", examples: Mapping[str, str] = EXAMPLES) -> dict:
    """Everything the page's script needs, as plain JSON-ready data."""
    lm = as_loaded(model)
    if not isinstance(examples, Mapping) or not examples:
        raise InputError("examples must be a non-empty dict of name → sentence, such as "
                         "{'A cat': 'The cat sat on the mat.'}" + (f", not {type(examples).__name__}." if not
                                                                    isinstance(examples, Mapping) else "; it is empty."))
    for name, text in examples.items():
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"Each example needs a name (a non-empty string) for the menu, got {name!r}.")
        if not isinstance(text, str):
            raise InputError(f"The example {name!r} must be a sentence (a string), not {type(text).__name__}.")
    patterns = [
        {"pattern": name, "layer": best.layer, "head": best.head, "score": round(best.score, 2)}
        for name, heads in find_heads(lm).items()
        for best in heads[:1]
        if best.score >= 0.3
    ]
    sentences = []
    for name, text in examples.items():
        record = attend(text, lm)
        sentences.append({
            "name": html.escape(name),
            "tokens": escape_labels(record.tokens),  # a blank character token shows as ␣ or ⏎
            "special": list(record.special),  # [CLS], [SEP]…: the "separator" pattern's keys
            "weights": base64.b64encode(quantize(record.attentions)).decode("ascii"),  # (L, H, T, T) uint8
        })
    return {
        "model": html.escape(lm.name), "layers": lm.n_layers, "heads": lm.n_heads, "causal": lm.causal,
        "views": VIEWS, "patterns": patterns, "sentences": sentences,
    }


class StaticExplorer:
    """Displays as the explorer's HTML in a book build, and as a pointer elsewhere."""

    def __init__(self, payload: dict):
        self.payload = payload

    def _repr_html_(self) -> str:
        if not render.building_book():
            return ('<div class="attnlab-static-notice">This is the book\'s static explorer; it draws only on '
                    "the course website. In a notebook, use the live explorer: "
                    "<code>from attnlab.live import explore; explore()</code>.</div>")
        # "<" inside the JSON would let a "</script>" in a sentence end the script tag early.
        data = json.dumps(self.payload, separators=(",", ":")).replace("<", "\\u003c")
        element_id = "attnlab-explorer-" + uuid.uuid4().hex[:8]
        return (f'<div class="attnlab-explorer" id="{element_id}" role="group" data-attnlab-traces="heatmap scatter" '
                f'aria-label="Attention explorer for {self.payload["model"]}">'
                '<noscript>This explorer needs JavaScript.</noscript>'
                f'<script type="application/json" class="attnlab-explorer-data">{data}</script></div>')


def static_explorer(model: str | LoadedModel = "minilm", examples: Mapping[str, str] = EXAMPLES) -> StaticExplorer:
    """The static explorer for ``model`` on ``examples`` (name → sentence)."""
    return StaticExplorer(explorer_payload(model, examples))
