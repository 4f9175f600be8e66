"""Run by tests/test_colab_pins.py with the Colab-pinned interpreter: the live explorer must work there."""
import os
os.environ["HF_HUB_OFFLINE"] = "1"
import ipywidgets, plotly, numpy as np
print("ipywidgets", ipywidgets.__version__, "plotly", plotly.__version__)
from attnlab.live import LiveExplorer, VIEWS
from attnlab.extraction import attend
e = LiveExplorer("minilm")
e.layer.value, e.head.value = 0, 2
z = np.array(e.last_figure.data[0].z, dtype=float)
assert np.allclose(z, attend(e.text.value, "minilm").head(0, 2), atol=1e-6)
runs = e.model_runs
e.text.value = "Colab pins still draw attention."
assert e.model_runs == runs + 1
for v in VIEWS:
    e.view.value = v
    assert e.last_figure.data
print("live explorer OK under Colab pins; figure json keys:", list(e.last_figure.to_plotly_json()))
