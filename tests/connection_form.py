"""The connection-form screenshots in docs/ and what they must show (issue 23: pictures stay true).

``make ui-check`` (tests/e2e/test_connection_form.py) screenshots Airflow's "Add Connection" dialog twice and
writes, next to each PNG, a sidecar ``<name>.fields.json``: the field labels the browser rendered inside that
screenshot, and the PNG's SHA-256. tests/unit/test_connection_form_screens.py (``make test``) compares each
sidecar with what the provider declares, so a form change without new screenshots fails fast.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from airflow_provider_baseten import get_provider_info

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Each committed screenshot and the accordion section open in it: "extra" (the provider's ``conn-fields``)
#: or "standard" (host and the API key, relabelled).
SHOTS = {DOCS / "connection-form.png": "extra", DOCS / "connection-form-standard.png": "standard"}

#: Airflow 3's "Add Connection" dialog: the fields above the accordion, always shown ...
DIALOG_FIELDS = ["Connection ID", "Connection Type"]
#: ... and the "Standard Fields" section, in the order the UI renders them, with Airflow's own labels
#: (a provider hides them with ``hidden-fields`` and renames them with ``relabeling``).
AIRFLOW_STANDARD_FIELDS = {
    "description": "Description",
    "host": "Host",
    "schema": "Schema",
    "login": "Login",
    "password": "Password",
    "port": "Port",
}


def _connection_type() -> dict[str, Any]:
    (baseten,) = get_provider_info()["connection-types"]
    return baseten  # type: ignore[no-any-return]


def declared_extra_labels() -> list[str]:
    """The labels of the provider's extra fields (``conn-fields``), in declared order."""
    return [field["label"] for field in _connection_type()["conn-fields"].values()]


def declared_standard_labels() -> list[str]:
    """The labels of the "Standard Fields" section: Airflow's, minus hidden ones, relabelled."""
    behaviour = _connection_type()["ui-field-behaviour"]
    hidden, relabel = set(behaviour["hidden-fields"]), behaviour["relabeling"]
    return [relabel.get(name, label) for name, label in AIRFLOW_STANDARD_FIELDS.items() if name not in hidden]


def declared_labels(section: str) -> list[str]:
    """Every label the screenshot with ``section`` ("standard" or "extra") open must show, top to bottom."""
    return DIALOG_FIELDS + (declared_standard_labels() if section == "standard" else declared_extra_labels())


def sidecar(shot: Path) -> Path:
    """``docs/connection-form.png`` -> ``docs/connection-form.fields.json``."""
    return shot.with_suffix(".fields.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sidecar(shot: Path, labels: list[str]) -> None:
    """Record what ``shot`` shows, bound to its bytes by their hash."""
    record = {
        "screenshot": shot.name,
        "sha256": sha256(shot),
        "labels": labels,
        "regenerate": "make ui-check",
    }
    sidecar(shot).write_text(json.dumps(record, indent=2) + "\n")


def read_sidecar(shot: Path) -> dict[str, Any]:
    return json.loads(sidecar(shot).read_text())  # type: ignore[no-any-return]
