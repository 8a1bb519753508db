#!/usr/bin/env bash
# Installs the real clients the integration tests drive: headless Chromium
# (with chromedriver), NSS tools (certutil, pk12util) to import a .p12 the way
# a clinic's PC does, a Japanese font so the error pages render, curl, openssl,
# and a Python virtualenv under target/test-venv with websockets (a
# push-exchanger-like client) and sslyze (TLS scan), pinned in
# tests/py/requirements.txt.
#
# Run as root on Debian/Ubuntu (.ci/run calls it); safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if command -v apt-get >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    curl openssl ca-certificates \
    chromium chromium-driver libnss3-tools fonts-noto-cjk \
    python3 python3-venv >/dev/null
else
  echo "setup-real-clients: no apt-get; install chromium, chromedriver, certutil/pk12util (NSS tools), curl, openssl, python3 with venv yourself" >&2
fi

venv=target/test-venv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p target
  # the system Python (a fresh machine has only that one)
  py=/usr/bin/python3
  [ -x "$py" ] || py=python3
  "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/py/requirements.txt
echo "setup-real-clients: ok ($("$venv/bin/python" -m sslyze --help >/dev/null && echo sslyze), chromium $(chromium --version 2>/dev/null | awk '{print $2}'))"
