"""attnlab: the code the attnlab course teaches from, and its attention explorers."""

from attnlab import render as _render
from attnlab.errors import show_friendly_errors as _show_friendly_errors
from attnlab.device import pick_device, seed_everything, setup

__version__ = "0.1.0"
__all__ = ["pick_device", "seed_everything", "setup", "__version__"]

# Inside a book build, figures must come out as plain HTML the static site can draw;
# everywhere else (Jupyter, Colab, VS Code) Plotly keeps its own renderer.
_render.use_book_renderer_if_building()

# In a notebook, the course's own errors show as one friendly line instead of a traceback.
_show_friendly_errors()
