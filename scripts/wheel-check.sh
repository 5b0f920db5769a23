#!/usr/bin/env bash
# make wheel-check: the wheel built from the committed tree installs into a fresh virtualenv with
# `pip install dist/*.whl`, and the emulator and an example DAG then run from it, not from the source tree.
#
# 1. `git archive HEAD` into a temp dir (only what is committed) and `uv build --wheel` there;
# 2. a fresh venv: Airflow from uv's cache (fast), then `pip install dist/*.whl` (pip resolves the wheel's
#    own dependencies; Airflow is already there);
# 3. from another temp dir, scripts/wheel_check.py in that venv: the package is in the venv's site-packages
#    with py.typed, its metadata (keywords, project URLs), `airflow providers get --full` (connection type,
#    config, asset URIs), then the emulator and the batch example DAG (`airflow dags test`) from the wheel.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
UV="${UV:-$ROOT/.venv/bin/uv}"
PYTHON="${PYTHON:-python3}"
AIRFLOW_SPEC="${AIRFLOW_SPEC:-apache-airflow>=3.3,<3.4}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/baseten-wheel-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS

mkdir -p "$WORK/src" "$WORK/dist" "$WORK/run" "$WORK/dags"
git -C "$ROOT" archive --format=tar HEAD | tar -x -C "$WORK/src"
"$UV" build -q --wheel --out-dir "$WORK/dist" "$WORK/src"
echo "built $(cd "$WORK/dist" && ls ./*.whl) from $(git -C "$ROOT" rev-parse --short HEAD) ($((SECONDS - start)) s)"

"$PYTHON" -m venv "$WORK/venv"
"$UV" pip install -q --python "$WORK/venv/bin/python" "$AIRFLOW_SPEC"
(cd "$WORK/dist" && "$WORK/venv/bin/pip" install -q --disable-pip-version-check ./*.whl)
echo "installed into a fresh venv ($((SECONDS - start)) s)"

# The example DAGs are user code: copied apart from the package sources, so nothing on sys.path holds them.
cp "$WORK/src/example_dags/"*.py "$WORK/dags/"
rm -rf "$WORK/src"
cd "$WORK/run"
mkdir -p "$WORK/tmp"  # the checker's temp dirs go there, removed with the rest
env -u PYTHONPATH TMPDIR="$WORK/tmp" "$WORK/venv/bin/python" "$ROOT/scripts/wheel_check.py" "$WORK/dags"
echo "wheel-check passed in $((SECONDS - start)) s"
