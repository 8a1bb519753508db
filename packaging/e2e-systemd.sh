#!/usr/bin/env bash
# End to end under a real systemd: a Debian 12 rootfs (debootstrap, cached
# under target/e2e/) booted with systemd-nspawn in a network namespace of its
# own (--network-veth). Inside it: the .deb from packaging/check-release.sh, a
# stand-in jma-receipt-weborca.service that sources jma-receipt.conf like
# WebORCA, and `weborca-mtls-proxy setup` run for real with systemctl and nft.
# Proves: the proxy unit is active and ready (Type=notify), `systemctl reload`
# works, the guard table is loaded, a client outside the container reaches the
# proxy but not the backend port, `install-crl` with a CRL revoking the client
# refuses that client after the reload, and `setup --rollback` brings the stand-in
# back on its own port with its own TLS. Needs root, systemd-container,
# debootstrap, curl, openssl. Every step is bounded; the container and its
# files are removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

deb=$(ls -t target/debian/weborca-mtls-proxy_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "no target/debian/weborca-mtls-proxy_*.deb: run packaging/check-release.sh first"
for tool in systemd-nspawn debootstrap nsenter curl openssl ip; do
  command -v "$tool" >/dev/null || fail "$tool is needed (apt-get install -y systemd-container debootstrap curl openssl iproute2)"
done

cache=target/e2e/rootfs-bookworm
if [ ! -x "$cache/usr/bin/python3" ]; then
  step "debootstrap bookworm into $cache (cached for later runs)"
  rm -rf "$cache.tmp"
  mkdir -p target/e2e
  timeout 900 debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,nftables,curl,ca-certificates,procps,python3 \
    bookworm "$cache.tmp" >target/e2e/debootstrap.log 2>&1 \
    || { tail -n 20 target/e2e/debootstrap.log >&2; fail "debootstrap failed"; }
  mv "$cache.tmp" "$cache"
fi

machine=wmpe2e$$
machine=${machine:0:12}
host_if="ve-$machine"
subnet=10.232.$(( $$ % 200 + 20 ))
host_ip=$subnet.1
ct_ip=$subnet.2
work=$(mktemp -d /var/tmp/weborca-e2e.XXXXXX)
root=$work/root
nspawn_pid=
pid=

cleanup() {
  set +e
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    timeout 30 nsenter -t "$pid" -a systemctl poweroff >/dev/null 2>&1
  fi
  if [ -n "$nspawn_pid" ]; then
    for _ in $(seq 1 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  ip link del "$host_if" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step "copy the rootfs, install the .deb, the stand-in WebORCA and its certificates"
cp -a "$cache" "$root"
cp "$deb" "$root/tmp/weborca-mtls-proxy.deb"
timeout 120 chroot "$root" \
  sh -c 'useradd --system --user-group --home-dir /opt/jma/weborca orca && dpkg -i /tmp/weborca-mtls-proxy.deb' \
  || fail "dpkg -i of $deb failed in the container"
grep -q '^ExecReload=/bin/kill' "$root/usr/lib/systemd/system/weborca-mtls-proxy.service" \
  && [ ! -x "$root/bin/kill" ] && fail "the unit's ExecReload needs /bin/kill and the rootfs has none"

pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 400 \
    -subj "/C=JP/O=orca/CN=e2e-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  leaf() { # name CN serial extensions
    openssl req -newkey rsa:2048 -nodes -keyout "$1.pem" -out "$1.csr" -subj "/C=JP/O=orca/CN=$2" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "$3" -days 400 \
      -out "$1.crt" -extfile <(printf '%b' "$4") 2>/dev/null
  }
  leaf server localhost 2 "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:$ct_ip\nextendedKeyUsage=serverAuth\n"
  leaf user1 user1 3 "extendedKeyUsage=clientAuth\n"
)
conf=$root/opt/jma/weborca/conf
mkdir -p "$conf"
cp "$pki/server.crt" "$conf/000002__JP_orca_localhost.crt"
cp "$pki/server.pem" "$conf/000002__JP_orca_localhost.pem"
cp "$pki/ca.crt" "$conf/ca.crt"
printf '%s\n' '# jma-receipt.conf (end-to-end stand-in)' 'DBNAME=orca' \
  'export SERVER_CRT=/opt/jma/weborca/conf/000002__JP_orca_localhost.crt' \
  'export SERVER_PEM=/opt/jma/weborca/conf/000002__JP_orca_localhost.pem' \
  'export CA_CRT=/opt/jma/weborca/conf/ca.crt' >"$conf/jma-receipt.conf"
original=$(sha256sum <"$conf/jma-receipt.conf")
cp packaging/e2e/weborca-stand-in.py "$root/opt/jma/weborca/"
cp packaging/e2e/jma-receipt-weborca.service "$root/etc/systemd/system/"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/jma-receipt-weborca.service "$root/etc/systemd/system/multi-user.target.wants/"
timeout 60 chroot "$root" \
  sh -c 'chown -R orca:orca /opt/jma/weborca && chmod 400 /opt/jma/weborca/conf/*.pem'

step "boot the container (systemd as PID 1, its own network namespace)"
systemd-nspawn -q -D "$root" -M "$machine" --boot --console=pipe --register=no --keep-unit \
  --network-veth </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 1 100); do
  pid=$(cat "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null | awk '{print $1}')
  [ -n "$pid" ] && break
  sleep 0.1
done
[ -n "$pid" ] || { cat "$work/console.log" >&2; fail "the container did not start"; }
in_ct() { timeout "${T:-60}" nsenter -t "$pid" -a "$@"; }
# The container's PID 1 must be systemd, and its bus up, before systemctl answers.
state=
for _ in $(seq 1 240); do
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ]; then
    state=$(T=120 in_ct systemctl is-system-running --wait 2>/dev/null || true)
    [ -n "$state" ] && break
  else
    pid=$(cat "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null | awk '{print $1}')
  fi
  sleep 0.5
done
echo "system state: $state"
[ "$state" = running ] || [ "$state" = degraded ] || { cat "$work/console.log" >&2; fail "systemd did not come up ($state)"; }
ip addr add "$host_ip/24" dev "$host_if"
ip link set "$host_if" up
timeout 10 nsenter -t "$pid" -n ip addr add "$ct_ip/24" dev host0
timeout 10 nsenter -t "$pid" -n ip link set host0 up
client=(--cacert "$pki/ca.crt" --cert "$pki/user1.crt" --key "$pki/user1.pem")
for _ in $(seq 1 50); do
  curl -sS -m 3 "${client[@]}" "https://$ct_ip:8000/" 2>/dev/null | grep -q 'stand-in https' && break
  sleep 0.2
done
curl -sS -m 5 "${client[@]}" "https://$ct_ip:8000/" | grep -q 'stand-in https port 8000' \
  || fail "the stand-in WebORCA does not answer with its own TLS on :8000"

step "setup, for real"
T=180 in_ct weborca-mtls-proxy setup --host "$ct_ip" --host localhost \
  || { in_ct journalctl --no-pager -n 50 >&2; fail "setup failed"; }

step "the proxy is active and ready (Type=notify)"
[ "$(in_ct systemctl show -p Type --value weborca-mtls-proxy.service)" = notify ] || fail "the unit is not Type=notify"
in_ct systemctl is-active --quiet weborca-mtls-proxy.service || fail "the proxy is not active"
in_ct systemctl is-active --quiet weborca-mtls-proxy-guard.service || fail "the guard unit is not active"

in_ct systemctl show -p Requires --value jma-receipt-weborca.service | grep -q weborca-mtls-proxy-guard.service \
  || fail "WebORCA's unit does not require the guard"

step "systemctl reload works"
in_ct systemctl reload weborca-mtls-proxy.service || fail "systemctl reload failed"
in_ct systemctl is-active --quiet weborca-mtls-proxy.service || fail "the proxy is not active after reload"
# (output is captured before grep reads it: `grep -q` leaving early would
# otherwise fail the pipeline under pipefail when the writer gets SIGPIPE)
journal() { in_ct journalctl --no-pager -u weborca-mtls-proxy.service 2>&1 || true; }
for _ in $(seq 1 50); do
  grep -qi 'reload' <<<"$(journal)" && break
  sleep 0.2
done
grep -qi 'reload' <<<"$(journal)" || fail "the proxy logged no reload"

step "the guard table is loaded"
guard_table() { in_ct nft list table inet weborca_mtls_proxy 2>&1 || true; }
table=$(guard_table)
grep -q 'iifname != "lo" tcp dport 8001 drop' <<<"$table" || {
  in_ct systemctl status --no-pager weborca-mtls-proxy-guard.service >&2 || true
  fail "the guard table is not loaded: $table"
}

step "starting nftables.service (it flushes the ruleset) leaves the guard table loaded"
# nftables.service is disabled and inactive as Debian installs it; an admin
# who enables it after setup must not remove the guard.
in_ct systemctl is-active --quiet nftables.service && fail "nftables.service is already active: this step cannot show what its start does"
in_ct systemctl start nftables.service || fail "systemctl start nftables failed"
table=$(guard_table)
grep -q 'iifname != "lo" tcp dport 8001 drop' <<<"$table" \
  || fail "starting nftables.service removed the guard table: $table"
in_ct systemctl is-active --quiet weborca-mtls-proxy-guard.service || fail "the guard unit is not active after nftables started"

step "from outside the container: the proxy answers, the backend port does not"
body=$(curl -sS -m 10 "${client[@]}" "https://$ct_ip:8000/") || fail "the proxy does not answer from outside"
grep -q 'stand-in http port 8001' <<<"$body" || fail "the proxy did not forward to the stand-in on 8001: $body"
if curl -sS -m 3 -o /dev/null "http://$ct_ip:8001/" 2>/dev/null; then fail "the backend port 8001 is reachable from outside"; fi
in_ct curl -sS -m 5 -o /dev/null http://127.0.0.1:8001/ || fail "WebORCA does not answer on 127.0.0.1:8001 inside"
T=60 in_ct weborca-mtls-proxy check --host "$ct_ip" || fail "check inside the container failed"

step "setup again: WebORCA's own unit holds 8001, so nothing changes"
out=$(T=180 in_ct weborca-mtls-proxy setup --host "$ct_ip" --host localhost 2>&1) || fail "the second setup failed: $out"
grep -q 'nothing to change' <<<"$out" || fail "the second setup changed something: $out"

step "setup refuses a backend port another unit listens on, even the one jma-receipt.conf names"
# a stranger on 8002 (a first move there), then on 8001 while WebORCA is stopped
in_ct systemd-run -q --unit=stranger-8002 python3 -m http.server 8002 --bind 127.0.0.1 || fail "systemd-run failed"
for _ in $(seq 1 50); do in_ct curl -s -m 1 -o /dev/null http://127.0.0.1:8002/ && break; sleep 0.1; done
in_ct curl -s -m 2 -o /dev/null http://127.0.0.1:8002/ || fail "the stranger on 8002 did not start"
out=$(T=60 in_ct weborca-mtls-proxy setup --dry-run --backend-port 8002 --host localhost 2>&1) && fail "setup took port 8002 from another program: $out"
grep -q 'another program already listens on port 8002 (127.0.0.1:8002 by python3 (PID [0-9]*, stranger-8002.service))' <<<"$out" \
  || fail "the refusal does not name the program on 8002: $out"
in_ct systemctl stop stranger-8002.service
in_ct systemctl stop jma-receipt-weborca.service || fail "could not stop WebORCA"
in_ct systemd-run -q --unit=stranger-8001 python3 -m http.server 8001 --bind 127.0.0.1 || fail "systemd-run failed"
for _ in $(seq 1 50); do in_ct curl -s -m 1 -o /dev/null http://127.0.0.1:8001/ && break; sleep 0.1; done
in_ct curl -s -m 2 -o /dev/null http://127.0.0.1:8001/ || fail "the stranger on 8001 did not start"
out=$(T=60 in_ct weborca-mtls-proxy setup --dry-run --host localhost 2>&1) && fail "setup took WebORCA's port from another program: $out"
grep -q 'stranger-8001.service), not jma-receipt-weborca.service' <<<"$out" || fail "the refusal does not name the unit on 8001: $out"
in_ct systemctl stop stranger-8001.service
in_ct systemctl start jma-receipt-weborca.service || fail "could not start WebORCA again"
for _ in $(seq 1 50); do in_ct curl -s -m 1 -o /dev/null http://127.0.0.1:8001/ && break; sleep 0.1; done
in_ct curl -sS -m 5 http://127.0.0.1:8001/ | grep -q 'stand-in http port 8001' || fail "WebORCA is not back on 8001"

step "install-crl: a CRL revoking user1, installed for real, refuses user1"
(
  cd "$pki"
  : >index.txt
  echo 01 >crlnumber
  printf '[ca]\ndefault_ca=e2e\n[e2e]\ndatabase=%s/index.txt\ncrlnumber=%s/crlnumber\ndefault_md=sha256\ndefault_crl_days=30\n' \
    "$pki" "$pki" >ca.cnf
  openssl ca -config ca.cnf -keyfile ca.key -cert ca.crt -revoke user1.crt 2>/dev/null
  openssl ca -config ca.cnf -keyfile ca.key -cert ca.crt -gencrl -out revoked-user1.crl 2>/dev/null
) || fail "could not make the CRL"
# (the container's /tmp is a tmpfs of its own: the file goes under /root)
cp "$pki/revoked-user1.crl" "$root/root/revoked-user1.crl"
T=120 in_ct weborca-mtls-proxy install-crl /root/revoked-user1.crl \
  || { in_ct journalctl --no-pager -n 50 >&2; fail "install-crl failed"; }
in_ct systemctl is-active --quiet weborca-mtls-proxy.service || fail "the proxy is not active after install-crl"
code=
for _ in $(seq 1 50); do
  code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "${client[@]}" "https://$ct_ip:8000/" 2>/dev/null || true)
  [ "$code" = 403 ] && break
  sleep 0.2
done
[ "$code" = 403 ] || fail "user1 is not refused after install-crl (HTTP $code)"
page=$(curl -sS -m 5 "${client[@]}" "https://$ct_ip:8000/" 2>&1 || true)
grep -qi 'revoked' <<<"$page" || fail "the refusal page does not say revoked: $page"

step "setup --rollback"
T=180 in_ct weborca-mtls-proxy setup --rollback || fail "rollback failed"
[ "$(sha256sum <"$conf/jma-receipt.conf")" = "$original" ] || fail "jma-receipt.conf is not restored byte for byte"
if in_ct systemctl is-active --quiet weborca-mtls-proxy.service; then fail "the proxy is still active"; fi
if in_ct nft list table inet weborca_mtls_proxy >/dev/null 2>&1; then fail "the guard table is still loaded"; fi
in_ct systemctl is-active --quiet jma-receipt-weborca.service || fail "stopping the guard stopped WebORCA"
curl -sS -m 5 "${client[@]}" "https://$ct_ip:8000/" | grep -q 'stand-in https port 8000' \
  || fail "the stand-in is not back on :8000 with its own TLS"

echo "ok: end to end under systemd $(in_ct systemctl --version | head -n 1 | awk '{print $2}')"
