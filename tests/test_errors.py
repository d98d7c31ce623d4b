"""Messages the workbench shows carry no terminal escape codes (issue 9 §7)."""

from __future__ import annotations

import pytest

import workbench as wb
from workbench.core._format import esc
from workbench.doctor.findings import Diagnosis, Finding, Retry
from workbench.errors import ExportError, strip_ansi

# What torch and friends print: colours (16, 256 and true colour, with ";" or ":"), resets, bold,
# cursor moves, erase-line, private modes (hide the cursor), OSC hyperlinks and window titles.
CODED = {
    "\x1b[96mThis is step 1/3\x1b[0m": "This is step 1/3",
    "\x1b[1;31merror\x1b[m": "error",
    "\x1b[38;5;196mred\x1b[39m": "red",
    "\x1b[38:2:255:0:0mtrue colour\x1b[0m": "true colour",
    "\x1b[2K\x1b[1Gprogress 50%": "progress 50%",
    "\x1b[?25lhidden cursor\x1b[?25h": "hidden cursor",
    "\x1b[3Aup three": "up three",
    "see \x1b]8;;https://pytorch.org\x1b\\the docs\x1b]8;;\x1b\\": "see the docs",
    "\x1b]0;a title\x07text": "text",
    "\x1b(Bcharset": "charset",
    "\x9b31m8-bit CSI\x9b0m": "8-bit CSI",
}


@pytest.mark.parametrize("coded,plain", CODED.items())
def test_strip_ansi_removes_every_escape_sequence(coded, plain):
    assert strip_ansi(coded) == plain


def test_strip_ansi_keeps_plain_text_and_brackets():
    text = "shape [96, 3] at index [0m] (not a code: no ESC)\nline 2"
    assert strip_ansi(text) == text


@pytest.mark.parametrize("coded,plain", CODED.items())
def test_brief_shows_no_escape_codes(coded, plain):
    assert wb.brief(RuntimeError(f"failed: {coded}")) == f"RuntimeError: failed: {plain}"
    assert wb.brief(f"failed: {coded}") == f"failed: {plain}"


def test_workbench_errors_print_without_escape_codes():
    error = ExportError("The dynamo exporter failed: \x1b[96mThis is step 1/3\x1b[0m.", stage="capture",
                        exception=RuntimeError("\x1b[31mboom\x1b[0m"))
    assert str(error) == "The dynamo exporter failed: This is step 1/3."
    assert "\x1b" not in str(wb.InvalidInputError("bad \x1b[1mvalue\x1b[0m"))
    assert wb.brief(error) == "RuntimeError: boom [via ExportError]"


def test_esc_strips_escape_codes_before_escaping():
    assert esc("\x1b[96m<b>x</b>\x1b[0m") == "&lt;b&gt;x&lt;/b&gt;"


def test_findings_keep_no_escape_codes():
    retry = Retry("export with torchscript", ok=False)
    finding = Finding("EXP001", "\x1b[1mexport fails\x1b[0m", "RuntimeError: \x1b[96mstep 1/3\x1b[0m",
                      {"signature": "\x1b[31mRuntimeError\x1b[0m", "sizes": [1, 2]}, "\x1b[32mfix it\x1b[0m",
                      retry=retry)
    retry.detail = "still fails: \x1b[31mboom\x1b[0m"  # the doctor sets it after the retry ran
    assert finding.cause == "RuntimeError: step 1/3" and finding.evidence["signature"] == "RuntimeError"
    assert finding.evidence["sizes"] == [1, 2]
    for text in (finding.text(), repr(finding), finding.evidence_text(), finding._repr_html_(), retry.describe()):
        assert "\x1b" not in text
    assert "still fails: boom" in finding.text()


def test_diagnosis_text_has_no_escape_codes():
    from workbench.core.case import ModelCase
    from workbench.doctor.attempt import Setting

    import torch

    case = ModelCase("m", torch.nn.Identity(), (torch.zeros(1),))
    finding = Finding("EXP001", "t", "c", {}, "f", retry=Retry("r", ok=False))
    diagnosis = Diagnosis("m", Setting(case), {"export": False}, [finding])
    finding.retry.detail = "\x1b[96mcoloured\x1b[0m"
    assert "\x1b" not in diagnosis.text() and "\x1b" not in diagnosis._repr_html_()
