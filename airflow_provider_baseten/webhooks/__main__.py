"""Run the webhook receiver on its own, for sites that do not expose Airflow to Baseten.

::

    BASETEN_WEBHOOK_SECRETS=whsec_new,whsec_old \\
        python -m airflow_provider_baseten.webhooks --host 0.0.0.0 --port 8790 --store /data/baseten-webhooks \\
        --secret-env BASETEN_WEBHOOK_SECRETS

or, to read everything from an Airflow connection (secrets reloaded every minute)::

    python -m airflow_provider_baseten.webhooks --conn-id baseten_webhooks --port 8790

Secrets are read from an environment variable or a connection, never from the command line (where ``ps`` would
show them). Put it behind a TLS-terminating proxy: Baseten requires HTTPS except for ``localhost``, and the proxy's
header timeout cuts off clients that send their headers slowly; the proxy is what makes an exposed receiver safe
against clients that only hold connections. Here, each connection's memory is bounded: a request head still
unfinished at 16 KiB is refused, bodies are read up to ``--max-body-bytes`` within ``--body-timeout`` seconds, idle
keep-alive connections close after 5 s. ``--max-connections N`` serves at most N open connections (one more gets
503); it counts idle ones too, and a 503 spends one of Baseten's two attempts, so it is off unless set. With
``--conn-id``, the connection's settings apply unless the same flag is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import sys

from airflow_provider_baseten.exceptions import BasetenConfigurationError
from airflow_provider_baseten.webhooks.settings import (
    DEFAULT_MAX_BODY_BYTES,
    ReceiverSettings,
    SecretSource,
    settings_from_connection,
)

#: The largest request head (line and headers) a client may send, in bytes (h11's own default, made explicit).
MAX_HEADER_BYTES = 16 * 1024


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_settings(argv: list[str] | None = None) -> tuple[argparse.Namespace, ReceiverSettings]:
    """The command line's options and the receiver settings they describe.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_baseten.webhooks", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--store", help="a folder or an ObjectStoragePath URL (overrides the connection's)")
    parser.add_argument("--secret-env", action="append", default=[], help="an env var holding secret(s)")
    parser.add_argument("--conn-id", help="read the receiver's settings from this Airflow connection")
    # These three default to the connection's (with --conn-id), else to the receiver's defaults.
    parser.add_argument("--max-body-bytes", type=int, help=f"default: {DEFAULT_MAX_BODY_BYTES}")
    parser.add_argument("--body-timeout", type=float, help="seconds; default: 10")
    parser.add_argument("--retention-days", type=float, help="remove bodies stored longer ago (default: keep all)")
    parser.add_argument("--allow-unsigned", action="store_true", help="development only, loopback host only")
    parser.add_argument("--max-connections", type=int, help="most open connections, idle ones too (default: no cap)")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    if args.max_connections is not None and args.max_connections < 1:
        parser.error("--max-connections must be at least 1")
    if args.allow_unsigned and not _is_loopback_host(args.host):
        parser.error("--allow-unsigned is only allowed when listening on a loopback address")
    if args.store == "":
        parser.error("--store is empty (an unset variable?): give a folder or an ObjectStoragePath URL")
    if args.conn_id and (args.secret_env or args.allow_unsigned):
        # The connection's secrets are the receiver's (reloaded, so a rotation needs no restart); unsigned
        # deliveries are refused on a connection-configured receiver (see settings_from_connection).
        parser.error("--secret-env and --allow-unsigned cannot be combined with --conn-id")
    try:
        if args.conn_id:
            base = settings_from_connection(args.conn_id, store=args.store)
        else:
            if not args.store:
                parser.error("--store is required without --conn-id")
            missing = [name for name in args.secret_env if not os.environ.get(name)]
            if missing:
                parser.error(f"environment variable(s) not set: {', '.join(missing)}")
            secrets = SecretSource.static([os.environ[name] for name in args.secret_env])
            base = ReceiverSettings(store=args.store, secrets=secrets)
        given = {
            "max_body_bytes": args.max_body_bytes,
            "body_timeout": args.body_timeout,
            "retention_days": args.retention_days,
        }
        # A flag given on the command line wins; the rest is the connection's (or the defaults).
        settings = dataclasses.replace(
            base, allow_unsigned=args.allow_unsigned, **{k: v for k, v in given.items() if v is not None}
        )
    except BasetenConfigurationError as exc:
        parser.error(str(exc))
    return args, settings


def main(argv: list[str] | None = None) -> int:
    """Serve the receiver with uvicorn until interrupted.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    """
    import uvicorn

    from airflow_provider_baseten.webhooks.app import create_app

    args, settings = parse_settings(argv)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        # h11, not httptools: only h11 bounds a request head's size (httptools buffers any number of headers).
        http="h11",
        # uvicorn refuses once open connections >= its limit, the asking one included: N open means N + 1.
        limit_concurrency=None if args.max_connections is None else args.max_connections + 1,
        timeout_keep_alive=5,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
