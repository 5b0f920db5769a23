"""``python -m airflow_provider_baseten.emulator --port 0 --api-key K [--config file]``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from airflow_provider_baseten.emulator.config import EmulatorConfig, FaultRule, load_config


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the emulator and serve until interrupted."""
    p = argparse.ArgumentParser(prog="python -m airflow_provider_baseten.emulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("BASETEN_EMULATOR_API_KEY"),
        help="the only accepted key (default: $BASETEN_EMULATOR_API_KEY or 'test-api-key')",
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

    import uvicorn

    from airflow_provider_baseten.emulator.app import EmulatorCore, create_app
    from airflow_provider_baseten.emulator.s3 import PREFIX as S3_PREFIX
    from airflow_provider_baseten.emulator.server import bind_socket, uvicorn_config

    core = EmulatorCore(config)
    app = create_app(core)
    sock = bind_socket(args.host, args.port)
    url = f"http://{args.host}:{sock.getsockname()[1]}"
    core.set_base_url(url)
    model = core.state.default_model_id()
    conn = {
        "conn_type": "baseten",
        "password": "<your --api-key>",
        "host": url,
        "extra": {
            "gateway": "baseten",
            "model_id": model,
            "inference_url": url + "/model/{model_id}",
            "upload_endpoint_url": url + S3_PREFIX,  # model archives: to the emulator, never to AWS
        },
    }
    print(f"Baseten emulator listening on {url}", flush=True)
    print(f"  LowCodeAPI gateway: {url}/baseten   admin: {url}/__admin/docs", flush=True)
    print(f"  AIRFLOW_CONN_BASETEN_DEFAULT='{json.dumps(conn)}'", flush=True)
    uvicorn.Server(uvicorn_config(app, log_level=args.log_level)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
