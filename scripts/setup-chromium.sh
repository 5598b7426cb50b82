#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (test/browser/*) when it is missing. The tests
# drive it with playwright-core (no browser download). Usage: bash scripts/setup-chromium.sh
# Set CHROMIUM_PATH to use another Chromium build; then this script only checks it.
set -euo pipefail
chromium=${CHROMIUM_PATH:-/usr/bin/chromium}

if [ -x "$chromium" ]; then
  echo "setup-chromium: $("$chromium" --version 2>/dev/null || echo "$chromium") is installed; nothing to do"
  exit 0
fi
if [ -n "${CHROMIUM_PATH:-}" ]; then
  echo "setup-chromium: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-chromium: no $chromium and no apt-get; install Chromium and set CHROMIUM_PATH" >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
# fonts-liberation: text metrics for the demo page; the rest comes with the package's dependencies.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
echo "setup-chromium: installed $("$chromium" --version)"
