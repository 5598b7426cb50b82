#!/usr/bin/env bash
# Installs a CPU Vulkan driver (Mesa lavapipe from Debian bookworm-backports) when no
# WebGPU adapter is available. Machines with a working GPU driver skip everything.
# Usage: bash scripts/setup-vulkan.sh [--force]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

have_adapter() {
  [ -d "$here/node_modules/webgpu" ] || return 1
  node "$here/scripts/probe-adapter.mjs" >/dev/null 2>&1
}

if [ "${1:-}" != "--force" ] && have_adapter; then
  echo "setup-vulkan: a WebGPU adapter is available; nothing to install"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "setup-vulkan: no WebGPU adapter and no apt-get; install a Vulkan driver for your GPU (or Mesa lavapipe >= 24)" >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
else
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
fi
echo "setup-vulkan: installed $(dpkg-query -W -f='${Package} ${Version}' mesa-vulkan-drivers)"
