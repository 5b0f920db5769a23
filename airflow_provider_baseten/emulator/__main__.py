"""``python -m airflow_provider_baseten.emulator --port 0 --api-key K [--config file] [--env-file PATH]``."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from airflow_provider_baseten.emulator.config import EmulatorConfig, FaultRule, load_config
from airflow_provider_baseten.emulator.server import BasetenEmulator, Gateway

#: The connection ids printed (and written by ``--env-file``): one per gateway the emulator serves.
CONNECTIONS: dict[str, Gateway] = {"baseten_default": "baseten", "baseten_lowcodeapi": "lowcodeapi"}
#: Stands for the key in what is printed: stdout ends up in CI logs, the key does not belong there.
KEY_PLACEHOLDER = "<your --api-key>"


def env_line(conn_id: str, conn: dict[str, Any]) -> str:
    """``AIRFLOW_CONN_<ID>='<json>'``: one line a shell (``set -a; . file``) or python-dotenv reads."""
    return f"AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn))}"


def write_env_file(path: str, lines: list[str]) -> None:
    """Write ``lines`` to ``path`` readable by its owner only (mode 0600, also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("".join(line + "\n" for line in lines))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the emulator, print its connections and serve until interrupted."""
    p = argparse.ArgumentParser(prog="python -m airflow_provider_baseten.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("BASETEN_EMULATOR_API_KEY"),
        help="the only accepted key (default: $BASETEN_EMULATOR_API_KEY or 'test-api-key')",
    )
    p.add_argument(
        "--env-file",
        metavar="PATH",
        help="write the connections, key included, as AIRFLOW_CONN_...=... lines to PATH (mode 0600); "
        "load them with `set -a; . PATH; set +a`",
    )
    p.add_argument("--config", help="JSON file with EmulatorConfig keys (time_scale, durations, faults, state, ...)")
    p.add_argument("--time-scale", type=float, help="emulated seconds per real second (0 freezes the clock)")
    p.add_argument("--predict-latency", type=float, help="real seconds each sync predict takes")
    p.add_argument(
        "--predict-capacity", type=int, help="sync predicts served at once; more are answered 503 (default: no limit)"
    )
    p.add_argument("--seed", type=int, help="seed for fault draws and generated ids")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[=RATE][@ENDPOINT,...]",
        help="inject a fault, e.g. 429=0.1 or drop=0.05@production_predict (repeatable)",
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        help="do not validate requests against Baseten's specs (tolerate a client that sends non-spec bodies)",
    )
    p.add_argument("--old-format-only", action="store_true", help="LowCodeAPI new-format URLs answer 404")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)

    overrides = {
        "api_key": args.api_key,
        "time_scale": args.time_scale,
        "predict_latency": args.predict_latency,
        "predict_capacity": args.predict_capacity,
        "seed": args.seed,
    }
    try:
        config = (
            load_config(args.config, **overrides)
            if args.config
            else EmulatorConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
        )
        config.faults += [FaultRule.parse(spec) for spec in args.fault]
    except (OSError, ValueError, TypeError) as exc:
        p.error(str(exc))
    if args.lenient:
        config.strict = False
    if args.old_format_only:
        config.gateway_new_format = False

    emu = BasetenEmulator(config=config, host=args.host, port=args.port)
    sock = emu.bind()
    # The same connections as BasetenEmulator.connection(): every URL template points here, so no call made
    # with them reaches Baseten's cloud.
    conns = {conn_id: emu.connection(gateway=gateway) for conn_id, gateway in CONNECTIONS.items()}
    if args.env_file:
        try:
            write_env_file(args.env_file, [env_line(i, c) for i, c in conns.items()])
        except OSError as exc:
            sock.close()
            p.error(f"--env-file {args.env_file}: {exc}")
    print(f"Baseten emulator listening on {emu.url}", flush=True)
    print(f"  LowCodeAPI gateway: {emu.gateway_url}   admin: {emu.url}/__admin/docs", flush=True)
    for conn_id, conn in conns.items():
        print("  " + env_line(conn_id, {**conn, "password": KEY_PLACEHOLDER}), flush=True)
    if args.env_file:
        print(f"  The same with the key: {Path(args.env_file).resolve()} (mode 0600)", flush=True)
    else:
        print("  The same with the key: add --env-file PATH (written with mode 0600)", flush=True)
    emu.serve_forever(sock, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
