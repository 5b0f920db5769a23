"""The long schemathesis run (``make chaos``): many positive and negative examples per served operation."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

pytest.importorskip("schemathesis")

import hypothesis.errors
from schemathesis import GenerationMode

from tests.chaos.report import Row
from tests.integration.test_fuzz import SERVED, _fuzz, fuzz_emulator

LONG_EXAMPLES = 100


@pytest.mark.chaos
def test_fuzz_every_served_operation(chaos_row: Row) -> None:
    examples = int(os.environ.get("BASETEN_FUZZ_EXAMPLES", LONG_EXAMPLES))
    chaos_row.case = "fuzz: schemathesis"
    chaos_row.tried = (
        f"{len(SERVED)} spec operations x positive+negative (direct) and negative (LowCodeAPI), up to "
        f"{examples} examples each, over HTTP: no 5xx, answers match the spec, forbidden requests refused"
    )
    failures: list[str] = []
    statuses: Counter = Counter()
    start = time.monotonic()
    with fuzz_emulator() as emu:
        runs = [(mode, False) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        runs.append((GenerationMode.NEGATIVE, True))  # the LowCodeAPI gateway forwards the same requests
        for surface, method, path in SERVED:
            for mode, gateway in runs:
                try:
                    statuses.update(_fuzz(emu, surface, method, path, mode, examples, gateway))
                except hypothesis.errors.Unsatisfiable:
                    continue  # on the gateway: nothing to negate (no parameters, no body)
                except Exception as exc:  # one failing operation must not hide the others
                    failures.append(f"{mode.value} {'gateway ' * gateway}{method} {path}: {str(exc)[:200]}")
    sent = sum(statuses.values())
    chaos_row.happened = (
        f"{sent} requests in {time.monotonic() - start:.0f} s; responses by class "
        + ", ".join(f"{k}xx: {v}" for k, v in sorted(statuses.items()))
        + f"; {len(failures)} failing operation(s)"
    )
    chaos_row.lost = "none" if not failures else f"{len(failures)} failures"
    chaos_row.metrics = {"operations": len(SERVED), "requests": sent, "failures": len(failures)}
    assert not failures, "\n".join(failures)
