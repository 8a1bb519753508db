#!/usr/bin/env bash
# Builds the release binary and the .deb, and checks that they fit Ubuntu 22.04:
# no glibc symbol newer than 2.35, and the package holds the binary, the unit,
# the example config and the logrotate file.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked
max=$(objdump -T target/release/weborca-mtls-proxy | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
echo "highest glibc symbol version: $max"
if [ "$(printf '%s\n2.35\n' "$max" | sort -V | tail -n 1)" != "2.35" ]; then
  echo "FAIL: the release binary needs glibc $max; Ubuntu 22.04 has 2.35" >&2
  exit 1
fi

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb --no-build
deb=$(ls -t target/debian/weborca-mtls-proxy_*.deb | head -n 1)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/weborca-mtls-proxy ./usr/lib/systemd/system/weborca-mtls-proxy.service \
         ./usr/lib/systemd/system/weborca-mtls-proxy-guard.service \
         ./usr/lib/systemd/system/nftables.service.d/weborca-mtls-proxy-guard.conf \
         ./etc/weborca-mtls-proxy/proxy.conf ./etc/logrotate.d/weborca-mtls-proxy; do
  grep -q " $f\$" <<<"$contents" || { echo "FAIL: $deb lacks $f" >&2; exit 1; }
done
# nftables for the backend guard; procps for /bin/kill in the unit's ExecReload.
depends=$(dpkg-deb -f "$deb" Depends)
for dep in nftables procps; do
  grep -Eq "(^|, )$dep(\$| |,)" <<<"$depends" || { echo "FAIL: $deb does not depend on $dep (Depends: $depends)" >&2; exit 1; }
done
echo "ok: $deb"
