#!/usr/bin/env bash
# benches/profile.sh GROUP [proxy|nginx] [SECONDS] [BENCH OPTIONS...]
#
# Runs one figure group of the nginx comparison (h1, h2, full, resumed, cpu,
# upload, download, idle, ws) for SECONDS and records a perf profile of one
# server while it runs. Writes $OUT/GROUP-WHO.perf.data and a flat report
# GROUP-WHO.txt (self time by symbol, with call chains below 1 %).
# Options after SECONDS go to the benchmark: a 1 GiB transfer is over in
# about a second, so profile upload and download with e.g. `--gib 8`.
#
# Builds with line tables (CARGO_PROFILE_BENCH_DEBUG) in a target folder of
# its own, so the measured binary is the release build plus symbols.
set -euo pipefail
group=${1:?usage: benches/profile.sh GROUP [proxy|nginx] [SECONDS]}
who=${2:-proxy}
secs=${3:-16}
shift $(($# < 3 ? $# : 3))
out=${OUT:-/tmp/weborca-bench-profile}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${PROFILE_TARGET_DIR:-target/profile}
export CARGO_PROFILE_BENCH_DEBUG=line-tables-only
cargo bench --bench proxy --no-run

PROXY_BIN=${PROXY_BIN:-} cargo bench --bench proxy -- --only "$group" --reps 1 --secs "$secs" "$@" >"$out/$group-run.txt" 2>&1 &
bench=$!
trap 'kill $bench 2>/dev/null || true' EXIT

# the servers of repetition 1, found by their config files
case $who in
  proxy) pattern='rep0/proxy/proxy.conf' ;;
  nginx) pattern='rep0/nginx/nginx.conf' ;;
  *) echo "WHO is proxy or nginx" >&2; exit 2 ;;
esac
pid=
for _ in $(seq 1 240); do
  pid=$(pgrep -f "$pattern" | head -1 || true)
  [ -n "$pid" ] && grep -q -- "  -- $group" "$out/$group-run.txt" 2>/dev/null && break
  sleep 0.5
done
[ -n "$pid" ] || { echo "no $who process appeared" >&2; exit 1; }
pids=$(echo "$pid" $(pgrep -P "$pid" || true) | tr ' ' ',')

# the group runs once per server, in A/B order: record across both runs.
perf record -F 999 -g -p "$pids" -o "$out/$group-$who.perf.data" -- sleep "$((secs * 2))" >/dev/null 2>&1
perf report -i "$out/$group-$who.perf.data" --no-children --sort comm,dso,symbol \
  --percent-limit 1 --stdio >"$out/$group-$who.txt" 2>/dev/null
wait $bench || true
trap - EXIT
echo "profile: $out/$group-$who.txt"
grep -E '^ +[0-9.]+%' "$out/$group-$who.txt" | head -40
