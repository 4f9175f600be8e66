"""What every checker shares: the verdict, the mismatch, and the loop over cases."""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from attnlab.errors import InputError


NOT_WRITTEN = "not written yet"


@dataclass
class CheckResult:
    """The verdict of one checker."""

    name: str
    passed: bool
    failed_case: str | None = None
    hint: str = ""
    cases_passed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.passed

    def message(self) -> str:
        """The verdict as one short paragraph."""
        if self.passed:
            return f"✓ {self.name}: all {len(self.cases_passed)} checks passed."
        if self.hint.startswith(NOT_WRITTEN):
            return f"✗ {self.name}: {self.hint}"
        done = f" ({len(self.cases_passed)} passed before it)" if self.cases_passed else ""
        return f"✗ {self.name}: the case “{self.failed_case}” failed{done}.\n   Hint: {self.hint}"

    def __repr__(self) -> str:
        return self.message()

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b3261e"
        text = html.escape(self.message()).replace("\n", "<br>")
        return f'<div class="attnlab-check" style="border-left:4px solid {colour};padding:4px 8px">{text}</div>'


class Mismatch(Exception):
    """A case failed; the message is the hint shown to the learner."""


NOTHING_RETURNED = "your function returned nothing (None): did you forget the `return` line at its end?"


def _needs_function(fn: object) -> None:
    if not callable(fn):
        raise InputError(f"Give the checker your function itself, without calling it: check(my_function), "
                         f"not check(my_function(...)); got {type(fn).__name__}.")


def _as_array(value, what: str) -> np.ndarray:
    if value is None:
        raise Mismatch(NOTHING_RETURNED)
    try:
        return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=float)
    except (TypeError, ValueError):
        raise Mismatch(f"{what} should be an array of numbers, but your function returned {type(value).__name__}.") from None


def _expect_shape(array: np.ndarray, shape: tuple, what: str) -> None:
    if array.shape != shape:
        raise Mismatch(f"{what} should have shape {shape}, but yours has shape {array.shape}.")


def _name_the_mistake(got, wrongs: dict[str, object], atol: float) -> None:
    """Raise the hint of the first usual wrong answer that ``got`` equals (same shape, within ``atol``)."""
    got = np.asarray(got, dtype=float)
    for hint, wrong in wrongs.items():
        wrong = np.asarray(wrong, dtype=float)
        if got.shape == wrong.shape and np.allclose(got, wrong, atol=atol):
            raise Mismatch(hint)


def _call_explaining(fn: Callable, errors: dict[str, str], *args, **options):
    """``fn(*args, **options)``; an error whose message contains a key of ``errors`` becomes that hint.

    PyTorch's RuntimeErrors and NumPy's ValueErrors for the usual slips (a ``.view`` after a
    transpose, a forgotten ``keepdim=True`` or ``keepdims=True``) say what broke, not which line
    of the learner's code to change.
    """
    try:
        return fn(*args, **options)
    except NotImplementedError:
        raise
    except (RuntimeError, ValueError) as error:
        for fragment, hint in errors.items():
            if fragment in str(error):
                raise Mismatch(hint) from None
        raise


def _run(name: str, cases: list[tuple[str, Callable[[], None]]], verbose: bool) -> CheckResult:
    result = CheckResult(name=name, passed=True)
    for case_name, case in cases:
        try:
            case()
        except Mismatch as mismatch:
            result.passed, result.failed_case, result.hint = False, case_name, str(mismatch)
            break
        except NotImplementedError:
            result.passed, result.failed_case = False, case_name
            result.hint = f"{NOT_WRITTEN}. Replace `raise NotImplementedError` with your code, then run this cell again."
            break
        except Exception as error:  # the learner's code raised: say what, not where
            result.passed, result.failed_case = False, case_name
            result.hint = f"your function raised {type(error).__name__}: {error}"
            break
        result.cases_passed.append(case_name)
    if verbose is None:  # in a notebook the returned result shows itself: printing too would say it twice
        verbose = "IPython" not in sys.modules or getattr(sys.modules["IPython"], "get_ipython", lambda: None)() is None
    if verbose:
        print(result.message())
    return result


