"""The committed connection-form screenshots show the form the provider declares (issue 23).

``make ui-check`` regenerates docs/connection-form*.png and, next to each, a ``*.fields.json`` sidecar of the
field labels the browser rendered inside it (tests/connection_form.py). This fast check fails when a field is
added, renamed, relabelled or hidden without regenerating the pictures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.connection_form import SHOTS, declared_labels, read_sidecar, sha256, sidecar

REGENERATE = "regenerate the screenshots with `make ui-check` and commit docs/connection-form*"


@pytest.mark.parametrize(("shot", "section"), SHOTS.items(), ids=[p.name for p in SHOTS])
def test_committed_screenshot_shows_every_declared_field(shot: Path, section: str) -> None:
    assert sidecar(shot).exists(), f"{sidecar(shot).name} is missing: {REGENERATE}"
    seen = read_sidecar(shot)
    assert seen["sha256"] == sha256(shot), f"{shot.name} changed since {sidecar(shot).name} was written: {REGENERATE}"
    assert seen["labels"] == declared_labels(section), (
        f"{shot.name} shows {seen['labels']}, the form declares {declared_labels(section)}: {REGENERATE}"
    )


def test_the_declared_form_has_the_fields_the_issue_counts() -> None:
    """8 extra fields today (issue 23 counted 5 in the old screenshot); the standard section: host and key."""
    assert len(declared_labels("extra")) == 2 + 8
    assert declared_labels("standard") == [
        "Connection ID",
        "Connection Type",
        "Description",
        "Base URL (optional)",
        "API Key",
    ]
