"""Print how many operations of Baseten's official specs the provider covers, excludes and has pending.

    python scripts/spec_coverage.py            # the counts
    python scripts/spec_coverage.py --list     # and every excluded and pending operation with its reason

The decisions live in ``airflow_provider_baseten/client/coverage.py``; ``tests/unit/test_spec_coverage.py``
fails when an operation is in none of the three.
"""

from __future__ import annotations

import argparse

from airflow_provider_baseten.client.coverage import EXCLUDED, PENDING
from airflow_provider_baseten.emulator.validation import covered_operations, spec_operations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every excluded and pending operation")
    args = parser.parse_args()
    ops = spec_operations()
    covered = covered_operations()
    n_cov = sum(op in covered for op in ops)
    n_exc = sum(op in EXCLUDED for op in ops)
    n_pen = sum(op in PENDING for op in ops)
    chains = sum(op in PENDING and PENDING[op].startswith("issue 24") for op in ops)
    print(f"spec operations: {len(ops)}")
    print(f"covered: {n_cov}  excluded: {n_exc}  pending: {n_pen} ({chains} chains, {n_pen - chains} not yet built)")
    print(f"unaccounted: {len(ops) - n_cov - n_exc - n_pen}")
    if args.list:
        for title, table in (("EXCLUDED", EXCLUDED), ("PENDING", PENDING)):
            print(f"\n{title}")
            for op, reason in table.items():
                print(f"  {op}: {reason}")


if __name__ == "__main__":
    main()
