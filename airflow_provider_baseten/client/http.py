"""What every HTTP client the provider builds shares: the process's one SSL context and the User-Agent."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import httpx

from airflow_provider_baseten import __version__


@functools.cache  # reading package metadata parses files: once per process, not once per hook
def user_agent() -> str:
    """``airflow-provider-baseten/<version> apache-airflow/<version>``."""
    try:
        from importlib.metadata import version

        airflow_version = version("apache-airflow")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        airflow_version = "unknown"
    return f"airflow-provider-baseten/{__version__} apache-airflow/{airflow_version}"


_ssl_lock = threading.Lock()
_ssl_context: Any = None


def shared_ssl_context() -> Any:
    """The process's one SSL context, shared by every client (sync, async, batch workers).

    Building one loads the CA bundle: 15-40 ms of CPU, which on the triggerer's event loop blocks every
    other trigger, once per trigger run and per sensor poke when each client builds its own. It honours
    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as httpx does, read when it is first built.
    """
    global _ssl_context
    with _ssl_lock:
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()
        return _ssl_context


async def ashared_ssl_context() -> Any:
    """:func:`shared_ssl_context` from an event loop: the first build runs in a thread, off the loop."""
    if _ssl_context is not None:
        return _ssl_context
    return await asyncio.to_thread(shared_ssl_context)
