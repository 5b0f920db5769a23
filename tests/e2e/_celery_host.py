"""``[core] hostname_callable`` for the Celery e2e: each worker reports its own name (``BASETEN_E2E_WORKER``).

All the workers run on this one machine, so the real hostname would be the same for all of them; each
worker's environment names it, and Airflow records that name on the task instances it runs.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The worker's name, or this machine's for the other components."""
    return os.environ.get("BASETEN_E2E_WORKER") or socket.getfqdn()
