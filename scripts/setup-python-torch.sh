#!/usr/bin/env bash
# Installs Debian's python3-torch (and numpy) for the PyTorch interoperability test
# (test/train/torch_interop.test.ts runs the reference model in test/oracle with /usr/bin/python3).
# No-op when /usr/bin/python3 can already import torch.
set -euo pipefail
if /usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1; then
  echo "setup-python-torch: $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)') is installed; nothing to do"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-python-torch: /usr/bin/python3 lacks torch and there is no apt-get; install PyTorch for it" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-torch python3-numpy >/dev/null
echo "setup-python-torch: installed $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)')"
