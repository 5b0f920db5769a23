#!/usr/bin/env bash
# `make ui-check`: the Baseten connection form and the Baseten pages in a real browser.
#
# Installs what the browser test needs when it is missing, then runs tests/e2e/test_connection_form.py,
# which starts `airflow api-server` on 127.0.0.1, checks the form metadata, and drives Debian's chromium
# with playwright-core to screenshot "Add Connection" with Baseten selected (docs/connection-form.png and
# docs/connection-form-standard.png, each with a docs/*.fields.json sidecar of the labels it shows, which
# `make test` compares with what the provider declares).
#
# Why playwright-core (npm) rather than Selenium: it drives the system chromium over the DevTools
# protocol, so there is no chromedriver to install and keep at chromium's exact version, it downloads
# no browser of its own, and its auto-waiting copes with Airflow's React form (async selects, accordions)
# without hand-written sleeps. It lives in build/ui-check, outside the project's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_CORE_VERSION=1.65.1
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PYTHON=${PYTHON:-.venv/bin/python}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -q; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

if [ ! -x "$CHROMIUM" ]; then
  echo "== installing Debian's chromium"
  apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== installing node and npm"
  apt_install nodejs npm
fi

pw=build/ui-check/node_modules/playwright-core/package.json
if [ ! -f "$pw" ] || ! grep -q "\"version\": \"$PLAYWRIGHT_CORE_VERSION\"" "$pw"; then
  echo "== installing playwright-core $PLAYWRIGHT_CORE_VERSION into build/ui-check"
  mkdir -p build/ui-check
  [ -f build/ui-check/package.json ] || echo '{"private": true}' > build/ui-check/package.json
  (cd build/ui-check && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error \
    "playwright-core@$PLAYWRIGHT_CORE_VERSION")
fi

echo "== $("$CHROMIUM" --version 2>/dev/null | tail -1), node $(node --version), playwright-core $PLAYWRIGHT_CORE_VERSION"
BASETEN_UI_CHECK=1 BASETEN_UI_SCREENSHOT=docs/connection-form.png CHROMIUM="$CHROMIUM" \
  "$PYTHON" -m pytest -q -p no:cacheprovider -m airflow_e2e tests/e2e/test_connection_form.py
# The Baseten pages (the plugin's task-instance tab and nav page): the example DAGs run against the
# emulator, then a real API server with auth, Chromium driven by scripts/ui-pages.mjs.
BASETEN_UI_CHECK=1 CHROMIUM="$CHROMIUM" \
  "$PYTHON" -m pytest -q -p no:cacheprovider -m airflow_e2e tests/e2e/test_ui_pages.py -s
echo "== screenshots: docs/connection-form.png (extra fields), docs/connection-form-standard.png (API key)"
echo "   docs/_static/screenshots/tab-*.png (the Baseten tab per task kind, and the nav page)"
echo "   and their sidecars docs/connection-form.fields.json, docs/connection-form-standard.fields.json: commit all four"
