"""Every operation of Baseten's two official specs is covered by a route, excluded with a reason, or pending.

The specs are the ones the emulator validates against (``emulator/specs``). A new operation in an updated spec
fails here until it gets a route in ``client/routes.py`` or an entry in ``client/coverage.py``; an entry (or a
route) naming an operation the specs no longer have fails too.
"""

from __future__ import annotations

from airflow_provider_baseten.client.coverage import EXCLUDED, PENDING
from airflow_provider_baseten.emulator.validation import covered_operations, spec_operations


def test_every_spec_operation_is_covered_excluded_or_pending() -> None:
    covered = covered_operations()
    missing = [op for op in spec_operations() if op not in covered and op not in EXCLUDED and op not in PENDING]
    assert not missing, (
        "spec operations with neither a route (client/routes.py) nor an entry in client/coverage.py "
        "(EXCLUDED with a reason, or PENDING):\n" + "\n".join(missing)
    )


def test_every_entry_names_an_operation_the_specs_still_have() -> None:
    ops = set(spec_operations())
    stale = sorted((set(EXCLUDED) | set(PENDING)) - ops)
    assert not stale, "entries in client/coverage.py for operations the specs no longer have:\n" + "\n".join(stale)


def test_a_covered_operation_is_neither_excluded_nor_pending() -> None:
    covered = covered_operations()
    both = sorted(op for op in covered if op in EXCLUDED or op in PENDING)
    assert not both, "covered by a route now: remove from client/coverage.py:\n" + "\n".join(both)
    assert not set(EXCLUDED) & set(PENDING)


def test_every_entry_says_why() -> None:
    assert all(reason.strip() for reason in [*EXCLUDED.values(), *PENDING.values()])


def test_the_specs_are_the_emulators_and_not_empty() -> None:
    # Guards the check against a vacuous pass (an empty or unreadable spec covers everything).
    ops = spec_operations()
    assert len(ops) >= 200 and len(set(ops)) == len(ops)
    assert "GET /v1/models" in covered_operations()


def test_the_docs_page_lists_every_exclusion_and_is_current() -> None:
    # docs/spec-coverage.md is generated from client/coverage.py: a stale page fails here.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[2]
    done = subprocess.run(
        [sys.executable, "scripts/spec_coverage.py", "--check"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    page = (root / "docs" / "spec-coverage.md").read_text(encoding="utf-8")
    assert all(f"`{op}` | {why} |" in page for op, why in EXCLUDED.items())
