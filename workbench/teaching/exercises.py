"""The notebooks' exercises: ``check(id, answer)`` says whether an answer is right (or gives a
hint), ``solution(id)`` returns the reference answer.

    >>> from workbench.teaching import exercises
    >>> answer = None  # the learner's code
    >>> if exercises.solution_mode(): answer = exercises.solution("01")
    >>> exercises.check("01", answer)          # Correct! ... / Not yet. Hint: ...

A verdict has one of three states: ``correct``; ``not yet`` (the answer is wrong, and the message
is a hint; a wrong answer never raises, even where running it fails); ``checker error`` (the
check itself crashed: a bug in the exercise, said as such, never passed off as a hint). Tests
assert the state, so a broken check cannot hide behind "Not yet". ``WB_SOLUTIONS=1`` in the
environment turns on ``solution_mode()`` (CI runs every notebook so).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any, Literal

from workbench.core._format import esc
from workbench.errors import InvalidInputError, brief
from workbench.teaching import checks, checks_later, checks_serve, checks_tune
from workbench.teaching.checks import Exercise, NotYet

EXERCISES: dict[str, Exercise] = {
    "01": Exercise(checks.check_01, checks.solution_01), "02": Exercise(checks.check_02, checks.solution_02),
    "03": Exercise(checks.check_03, checks.solution_03), "04": Exercise(checks.check_04, checks.solution_04),
    "05": Exercise(checks.check_05, checks.solution_05), "06": Exercise(checks_later.check_06, checks_later.solution_06),
    "07": Exercise(checks_later.check_07, checks_later.solution_07), "08": Exercise(checks_later.check_08, checks_later.solution_08),
    "09": Exercise(checks_later.check_09, checks_later.solution_09), "10": Exercise(checks_later.check_10, checks_later.solution_10),
    "11": Exercise(checks_tune.check_11, checks_tune.solution_11),
    "12": Exercise(checks_serve.check_12, checks_serve.solution_12),
}

__all__ = ["EXERCISES", "CheckResult", "check", "solution", "solution_mode"]

Status = Literal["correct", "not yet", "checker error"]
_STYLE = {"correct": ("#1a7f37", "#dafbe1", "Correct!", ""),
          "not yet": ("#9a6700", "#fff8c5", "Not yet.", " Hint:"),
          "checker error": ("#cf222e", "#ffebe9", "Checker error.", "")}


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: ``bool()`` is whether it is right; ``status`` tells a wrong answer
    (``"not yet"``, ``message`` is the hint) from a check that crashed (``"checker error"``,
    ``traceback`` says where)."""

    exercise: str
    status: Status
    message: str
    traceback: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    @property
    def crashed(self) -> bool:
        return self.status == "checker error"

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        if self.status == "correct":
            return f"Correct! (exercise {self.exercise}) {self.message}"
        if self.status == "not yet":
            return f"Not yet (exercise {self.exercise}). Hint: {self.message}"
        return (f"Checker error (exercise {self.exercise}): {self.message}. This is a bug in the exercise's "
                "check, not a verdict on your answer; please report it.")

    def _repr_html_(self) -> str:
        color, bg, head, label = _STYLE[self.status]
        text = self.message if self.status != "checker error" else repr(self).split(": ", 1)[1]
        return (f"<div style='border-left:4px solid {color};background:{bg};padding:6px 10px'>"
                f"<b>{head}</b> <small>(exercise {esc(self.exercise)})</small>{label} {esc(text)}</div>")


def solution_mode() -> bool:
    """True when ``WB_SOLUTIONS=1``: the exercise cells then take the reference answer."""
    return os.environ.get("WB_SOLUTIONS") == "1"


def _known(exercise: str) -> Any:
    if exercise not in EXERCISES:
        raise InvalidInputError(f"No exercise {exercise!r}. The exercises are {list(EXERCISES)}.")
    return EXERCISES[exercise]


def solution(exercise: str) -> Any:
    """The reference answer of an exercise ('01' ... '10')."""
    return _known(exercise).solution()


def check(exercise: str, answer: Any) -> CheckResult:
    """Check an answer. A wrong answer gives ``not yet`` with a hint and never raises; a crash of
    the check itself gives ``checker error`` (raises only for an unknown exercise id)."""
    checker = _known(exercise).check
    if answer is None:
        return CheckResult(exercise, "not yet", "write your answer in the exercise cell above (it is still None).")
    try:
        return CheckResult(exercise, "correct", checker(answer))
    except NotYet as hint:
        return CheckResult(exercise, "not yet", str(hint))
    except Exception as exc:  # the check's own bug: say so, do not dress it up as a hint
        return CheckResult(exercise, "checker error", brief(exc), traceback.format_exc(limit=12))
