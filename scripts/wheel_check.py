"""``make wheel-check``, last step: run by the fresh venv's Python from a temp dir (see wheel-check.sh).

Checks that ``airflow_provider_baseten`` is the installed wheel (in this venv's site-packages, with
``py.typed``), its metadata, what ``airflow providers get --full`` shows, and then runs the emulator and
the ``baseten_batch_inference`` example DAG with ``airflow dags test``, all from the wheel.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from importlib import metadata
from pathlib import Path

PACKAGE = "airflow-provider-baseten"
DAG_ID = "baseten_batch_inference"
ROWS = 200


def check(ok: bool, what: str) -> None:
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        raise SystemExit(1)


def main(dags: Path) -> None:
    import airflow_provider_baseten as pkg

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(pkg.__file__).resolve()
    check(site in where.parents, f"imported from the venv's site-packages: {where}")
    check((where.parent / "py.typed").is_file(), "py.typed is installed (PEP 561)")
    from airflow_provider_baseten.ui.app import STATIC, STATIC_FILES

    missing = [name for name in STATIC_FILES if not (STATIC / name).is_file()]
    check(
        not missing and STATIC.resolve().parent.parent == where.parent, f"the UI's static files are installed {missing}"
    )
    check((STATIC.parent / "templates" / "training.html").is_file(), "the UI's templates are installed")

    meta = metadata.metadata(PACKAGE)
    keywords = [k.strip() for k in (meta.get("Keywords") or "").split(",")]
    check("airflow-provider" in keywords, f"keywords {keywords}")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    check(
        all(
            urls.get(k, "").startswith("https://github.com/")
            for k in ("Homepage", "Documentation", "Source", "Changelog")
        ),
        f"project URLs {sorted(urls)}",
    )

    files = [str(f) for f in metadata.files(PACKAGE) or []]
    dev_only = [f for f in files if f.startswith("dev/") or f.endswith(("/demo.py", "/_local_airflow.py"))]
    check(not dev_only, f"the wheel holds no dev-only tools (dev/, demo, local-Airflow harness): {dev_only}")

    # The demo's helpers are dev-only (the repository's dev/, not in the wheel). The repository goes at the
    # END of sys.path, so airflow_provider_baseten still comes from the venv's site-packages.
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    from airflow_provider_baseten.emulator import BasetenEmulator
    from dev.demo import airflow_cmd, airflow_env, run_states, tail, write_inputs

    shown = subprocess.run(
        [airflow_cmd(), "providers", "get", PACKAGE, "--full", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AIRFLOW_HOME": tempfile.mkdtemp(), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
    )
    (info,) = json.loads(shown.stdout.strip().splitlines()[-1])
    check(
        [c["connection-type"] for c in info["connection-types"]] == ["baseten"], "airflow registers the connection type"
    )
    check("baseten" in info.get("config", {}), "airflow shows the [baseten] config section")
    check(
        info.get("asset-uris") == pkg.get_provider_info().get("asset-uris"), "airflow shows the asset URIs as declared"
    )
    modules = [
        m for kind in ("operators", "sensors", "triggers") for e in info.get(kind, []) for m in e["python-modules"]
    ]
    declared = [
        m
        for kind in ("operators", "sensors", "triggers")
        for e in pkg.get_provider_info()[kind]
        for m in e["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    check(modules == declared, f"airflow shows and imports {len(modules)} operator, sensor and trigger modules")

    os.environ["BASETEN_DEMO_DAGS_FOLDER"] = str(dags)
    work = Path(tempfile.mkdtemp(prefix="wheel-check-"))
    home, logs, out = work / "airflow", work / "logs", work / "out"
    for d in (home, logs, out):
        d.mkdir()
    write_inputs(work / "in.jsonl", ROWS)
    with BasetenEmulator(time_scale=30.0) as emu:
        variables = {"baseten_batch_input": str(work / "in.jsonl"), "baseten_batch_output_dir": str(out)}
        env = airflow_env(home, emu.connection_json(), variables)
        subprocess.run([airflow_cmd(), "db", "migrate"], env=env, capture_output=True, check=True)
        # `airflow dags test` in its own process, the wheel's airflow: not make demo's runner, whose
        # `python -m dev.demo` in the repository would import the package from source instead of the wheel.
        log, start = logs / f"{DAG_ID}.log", time.monotonic()
        with log.open("w") as fh:
            proc = subprocess.run(
                [airflow_cmd(), "dags", "test", DAG_ID], env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=600
            )
        ok, seconds = proc.returncode == 0, time.monotonic() - start
        state, tasks = run_states(home / "airflow.db", DAG_ID)
        if not (ok and state == "success"):
            print(tail(log), file=sys.stderr)
        check(ok and state == "success", f"{DAG_ID} ran against the emulator in {seconds:.0f} s: {tasks}")
        predicted = emu.counters()["requests"]
        check(
            sum(n for name, n in predicted.items() if "predict" in name) >= ROWS,
            f"the emulator served {dict(predicted)}",
        )
    results = [p for p in out.rglob("*.jsonl")]
    check(sum(len(p.read_text().splitlines()) for p in results) >= ROWS, f"{ROWS} results written: {results}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
