#!/usr/bin/env bash
# The report tests open the report in a real headless browser: Debian's Chromium, driven by
# playwright-core (pinned in tools/browser-check/package-lock.json; it never downloads a browser).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -d tools/browser-check/node_modules/playwright-core ]; then
  (cd tools/browser-check && npm ci --no-audit --no-fund --silent)
fi
