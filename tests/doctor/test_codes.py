"""The finding codes: documented, stable, and CODES.md in step with the table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench import doctor
from workbench.doctor.codes import CODES, code_info, codes_markdown

DOCTOR = Path(doctor.__file__).parent


def test_codes_md_is_generated_from_the_table():
    assert (DOCTOR / "CODES.md").read_text() == codes_markdown(), "regenerate CODES.md with codes_markdown()"


def test_every_code_the_rules_emit_is_documented():
    used = set()
    for path in DOCTOR.glob("*.py"):
        used |= set(re.findall(r'Finding\(\s*"([A-Z]+\d{3})"', path.read_text()))
        used |= set(re.findall(r'^\s+"([A-Z]+\d{3})", ', path.read_text(), re.MULTILINE))
    assert used and used <= set(CODES), used - set(CODES)


def test_code_info():
    info = code_info("NUM003")
    assert info.category == "numerics" and "optimization" in info.title
    with pytest.raises(KeyError, match="Unknown finding code 'XYZ999'"):
        code_info("XYZ999")
    assert all(re.fullmatch(r"[A-Z]+\d{3}", c) for c in CODES)


def test_every_code_names_a_stage_of_the_attempt():
    from workbench.doctor.attempt import STAGE_NAMES

    allowed = set(STAGE_NAMES) | {"setup", "any"}
    for info in CODES.values():
        stages = {s.strip() for s in info.stage.split(",")}
        assert info.stage and stages <= allowed, (info.code, info.stage)
    assert "| stage |" in codes_markdown()
