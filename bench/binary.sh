#!/usr/bin/env bash
# bench/binary.sh — a benchmark, not a test: two remedy binaries built with
# different release profiles (opt-level "s" against "z", say), side by side on
# the work that is the client's own CPU — what a smaller but slower build
# could cost.
#
# Rows, each timed (wall, and the client's user+sys CPU) for both binaries,
# interleaved, one untimed warm-up round, medians of ROUNDS:
#   version   `remedy --version`: process start-up.
#   validate  `remedy validate`: every built-in runbook parsed and checked,
#             its Rhai compiled (YAML, Rhai, clap; no I/O but reading them).
#   exec      `remedy exec` of `true` on CONNS connections at once to one
#             local OpenSSH server (scripts/local-sshd.sh): key exchange
#             (curve25519), ed25519 host-key check and public-key auth, a
#             channel each — the per-host CPU of `remedy exec` on a fleet.
#   run       `remedy run` of a runbook of STEPS trivial steps on that host:
#             plan, journal (SQLite, fsync) and apply per step.
# The sshd shares the machine's cores: the CPU column is the client's alone.
#
# Needs root (the sshd), OpenSSH, python3.
# Usage: bench/binary.sh A B [ROUNDS]   (ROUNDS default 5; CONNS 20, STEPS 20)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: bench/binary.sh A B [ROUNDS]" >&2; exit 2; }
A=$(realpath -e "$1") B=$(realpath -e "$2")
ROUNDS=${3:-5}
CONNS=${CONNS:-20}
STEPS=${STEPS:-20}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (an sshd)" >&2; exit 1; }

W=$(mktemp -d /var/tmp/bench-binary.XXXXXX) # on the disk: the journal's fsyncs are real
SSHD_PID=
cleanup() {
  rc=$?
  if [ -n "$SSHD_PID" ]; then
    kill "$SSHD_PID" 2>/dev/null || true
    wait "$SSHD_PID" 2>/dev/null || true
  fi
  if [ "$rc" -eq 0 ]; then rm -rf "$W"; else echo "bench: failed (exit $rc); files kept in $W" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
. "$ROOT/scripts/local-sshd.sh"
local_sshd "$W/host"
# CONNS names for the one server: remedy opens one connection per host.
{
  head -2 "$W/host/inventory.yaml"
  for ((i = 1; i <= CONNS; i++)); do echo "  c$i: { address: 127.0.0.1, port: $SSHD_PORT }"; done
} >"$W/fleet.yaml"
{
  echo "runbook: steps-$STEPS"
  echo "summary: $STEPS trivial steps"
  echo "targets: all"
  echo "on_failure: stop"
  echo "steps:"
  for ((i = 1; i <= STEPS; i++)); do echo "  - { id: s$i, action: shell, with: { cmd: \"echo step-$i\" } }"; done
} >"$W/steps.yaml"
export NO_COLOR=1 REMEDY_HOME=$W/home

row() { # BIN ROW: runs one row once, output checked
  local bin=$1 out=$W/out
  case $2 in
    version) "$bin" --version >"$out" ;;
    validate) "$bin" validate >"$out" 2>&1 ;;
    exec)
      "$bin" exec --parallel "$CONNS" -i "$W/fleet.yaml" all -- true >"$out" 2>&1
      ;;
    run)
      "$bin" run "$W/steps.yaml" -i "$W/host/inventory.yaml" --yes >"$out" 2>&1
      [ "$(grep -c 'echo step-' "$out" || true)" -ge "$STEPS" ] || false
      ;;
  esac || { echo "bench: $bin, $2 failed:" >&2; cat "$out" >&2; exit 1; }
}
# Wall and CPU (user + sys of the row and all it waited for), in seconds,
# to the microsecond (GNU time's CPU has 10 ms steps).
cat >"$W/timed.py" <<'EOF'
import resource, subprocess, sys, time
t0, c0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
rc = subprocess.call(sys.argv[1:])
t1, c1 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
if rc:
    sys.exit(rc)
print(f"{t1 - t0:.6f} {c1.ru_utime - c0.ru_utime:.6f} {c1.ru_stime - c0.ru_stime:.6f}")
EOF
ROWS="version validate exec run"
: >"$W/times"
for ((r = 0; r <= ROUNDS; r++)); do
  for name in $ROWS; do
    for which in A B; do
      bin=$A
      [ "$which" = B ] && bin=$B
      t=$(python3 "$W/timed.py" bash -c "$(declare -f row); W=$W CONNS=$CONNS STEPS=$STEPS row '$bin' $name")
      [ "$r" -eq 0 ] || echo "$which-$name $t" >>"$W/times"
    done
  done
done

echo "A: $A ($(stat -c %s "$A") bytes)"
echo "B: $B ($(stat -c %s "$B") bytes)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds, medians; CONNS=$CONNS STEPS=$STEPS"
python3 - "$ROWS" "$W/times" <<'EOF'
import collections, statistics, sys
rows = sys.argv[1].split()
runs = collections.defaultdict(list)  # "A-exec" -> [(wall, cpu)]
for line in open(sys.argv[2]):
    k, wall, user, sys_ = line.split()
    runs[k].append((float(wall), float(user) + float(sys_)))
t = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
print(f"{'row':<10} {'A wall':>9} {'B wall':>9} {'B/A':>6} {'A cpu':>9} {'B cpu':>9} {'B/A':>6}")
for row in rows:
    (aw, ac), (bw, bc) = t[f"A-{row}"], t[f"B-{row}"]
    print(f"{row:<10} {aw*1e3:>7.1f}ms {bw*1e3:>7.1f}ms {bw/aw:>6.2f} {ac*1e3:>7.1f}ms {bc*1e3:>7.1f}ms {bc/ac:>6.2f}")
EOF
