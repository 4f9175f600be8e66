"""The course's own errors: each carries a message written for a learner, not a stack trace."""

from __future__ import annotations


class AttnlabError(Exception):
    """An error whose message tells a learner what happened and what to do."""


class InputError(AttnlabError, ValueError):
    """Text, layer or head that cannot be used as given."""


class ModelNotFound(AttnlabError, LookupError):
    """A model name that is neither registered, nor a folder, nor on the hub."""


class NeedsInternet(AttnlabError, ConnectionError):
    """A hub model asked for where the hub cannot be reached."""


def show_friendly_errors() -> None:
    """In IPython/Jupyter/Colab, show AttnlabError as its message alone, without a traceback."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def handler(shell, etype, value, tb, tb_offset=None):
        print(f"⚠️  {value}")

    shell.set_custom_exc((AttnlabError,), handler)
