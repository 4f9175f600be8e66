"""attnlab: the code the attnlab course teaches from, and its attention explorers."""

from attnlab import render as _render
from attnlab.device import pick_device, seed_everything, setup

__version__ = "0.1.0"
__all__ = ["pick_device", "seed_everything", "setup", "__version__"]

# Inside a book build, figures must come out as plain HTML the static site can draw;
# everywhere else (Jupyter, Colab, VS Code) Plotly keeps its own renderer.
_render.use_book_renderer_if_building()
