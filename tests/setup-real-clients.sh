#!/usr/bin/env bash
# Installs the real clients the integration tests drive, once (`scripts/test`
# calls it before `cargo test`; safe to run again, and quick when nothing is
# missing):
# - headless Chromium (with chromedriver) and Firefox ESR, NSS tools
#   (certutil, pk12util) to import a .p12 the way a clinic's PC does, and a
#   Japanese font so the error pages render;
# - curl and openssl;
# - Java 17 (javac + java.net.http, as monsiaj uses it);
# - Ruby with the websocket and faye-websocket libraries (push-exchanger and
#   the orca-api gem are Ruby);
# - a Python virtualenv under target/test-venv with websockets (a
#   push-exchanger-like client) and sslyze (TLS scan), pinned in
#   tests/py/requirements.txt;
# - nft and ip, which the backend guard's test runs inside network
#   namespaces it makes (tests/guard_netns.rs).
#
# apt packages are installed when run as root on Debian/Ubuntu; otherwise the
# missing ones are named and the tests that need them fail with this script's
# name in their message.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(
  curl openssl ca-certificates
  chromium chromium-driver libnss3-tools fonts-noto-cjk
  firefox-esr
  openjdk-17-jdk-headless
  ruby ruby-websocket ruby-faye-websocket
  python3 python3-venv
  nftables iproute2
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup-real-clients: installing ${missing[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup-real-clients: missing ${missing[*]}; run this script as root on Debian/Ubuntu, or install them yourself" >&2
  fi
fi

venv=target/test-venv
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p target
  # the system Python (a fresh machine has only that one)
  py=/usr/bin/python3
  [ -x "$py" ] || py=python3
  "$py" -m venv "$venv"
fi
# pip runs again only when the pinned list changed
stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/py/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r tests/py/requirements.txt
  echo "$want" >"$stamp"
fi

version() { "$@" 2>&1 | head -1 || true; }
echo "setup-real-clients: ok"
echo "  chromium: $(chromium --version 2>/dev/null | grep -m1 -i chromium || true)"
echo "  firefox:  $(version firefox-esr --version)"
echo "  java:     $(version java -version)"
echo "  ruby:     $(version ruby -v)"
echo "  curl:     $(version curl --version)"
echo "  python:   $(version "$venv/bin/python" --version), $("$venv/bin/python" -m pip show websockets sslyze 2>/dev/null | awk '/^(Name|Version)/{printf "%s ", $2}')"
