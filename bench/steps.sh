#!/usr/bin/env bash
# bench/steps.sh — a benchmark, not a test.
#
# Per-step overhead of a real run on open connections, and the journal:
#   1. remedy run: a runbook of STEPS trivial steps (`shell: echo step-N`) on the
#      lab's 3 masters (default strategy: one host at a time), each step planned,
#      journaled (intent, applied, done: each append durable, synchronous=FULL)
#      and applied — against the same runbook with 1 step, so the difference is
#      the cost of STEPS-1 steps on 3 hosts, without start-up, SSH logins and locks;
#   2. a plain `ssh -o ControlPath=…` loop running the same commands on the same
#      hosts one after another, through masters opened before the timing — the
#      fastest way OpenSSH runs a command on an open connection — again STEPS
#      against 1 command per host.
#   Per step = (time with STEPS − time with 1) / ((STEPS − 1) × 3 hosts).
#   3. the journal alone: events appended per second into a journal on the same
#      file system (journal/examples/append_rate.rs), and so the journal's share
#      of the STEPS-step run: (its events / that rate) / its wall time.
#
# Method: one untimed warm-up round, then ROUNDS rounds, each running the four
# rows interleaved; medians. The lab (remedy lab up, BASE 127.0.98.10) is the
# real one: etcd, kube-apiserver and the rest run on the masters meanwhile, as on
# a real control plane. REMEDY_HOME (the journal) is on the disk (/var/tmp), not
# tmpfs, so its fsyncs are real.
#
# Needs root, scripts/setup, a release build (cargo build --release --bin remedy;
# the script builds the journal example itself).
# Usage: bench/steps.sh [ROUNDS] (default 5); STEPS via env (default 50),
# REMEDY (the binary), JOURNAL_PROFILE (default release), BASE (the lab's base
# address, default 127.0.98.10).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-5}
STEPS=${STEPS:-50}
REMEDY=${REMEDY:-$ROOT/target/release/remedy}
BASE=${BASE:-127.0.98.10}
W=$(mktemp -d /var/tmp/bench-steps.XXXXXX)
export REMEDY_HOME=$W/home NO_COLOR=1
LAB=$W/lab
HOSTS=(1 2 3)
cleanup() {
  for i in "${HOSTS[@]}"; do
    ssh -o ControlPath="$W/cm-$i" -O exit bench >/dev/null 2>&1 || true
  done
  "$REMEDY" lab down --dir "$LAB" >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
[ -x "$REMEDY" ] || { echo "no release binary at $REMEDY" >&2; exit 1; }
# JOURNAL_PROFILE=dev builds the journal's example without optimisation
# (quicker; an append's time is its fsyncs either way).
JOURNAL_PROFILE=${JOURNAL_PROFILE:-release}
(cd "$ROOT" && cargo build -q --profile "$JOURNAL_PROFILE" -p remedy-journal --example append_rate)
APPEND_RATE=${CARGO_TARGET_DIR:-$ROOT/target}/$([ "$JOURNAL_PROFILE" = dev ] && echo debug || echo "$JOURNAL_PROFILE")/examples/append_rate
"$REMEDY" lab up --dir "$LAB" --base-address "$BASE" >/dev/null

runbook() { # N: a runbook of N trivial steps on the masters
  echo "runbook: steps-$1"
  echo "summary: $1 trivial steps"
  echo "targets: masters"
  echo "on_failure: stop"
  echo "steps:"
  for ((i = 1; i <= $1; i++)); do
    echo "  - { id: s$i, action: shell, with: { cmd: \"echo step-$i\" } }"
  done
}
runbook "$STEPS" >"$W/steps-$STEPS.yaml"
runbook 1 >"$W/steps-1.yaml"

SSH=(ssh -i "$LAB/ssh/id_ed25519" -o UserKnownHostsFile="$LAB/ssh/known_hosts"
  -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -p 2222 -l root)
addr() { echo "${BASE%.*}.$((${BASE##*.} + $1))"; }
for i in "${HOSTS[@]}"; do # the masters the loop goes through, opened now
  "${SSH[@]}" -o ControlMaster=yes -o ControlPath="$W/cm-$i" -o ControlPersist=600 -fN "$(addr "$i")"
done

now() { date +%s%N; }
remedy_run() { # N
  "$REMEDY" run "$W/steps-$1.yaml" -i "$LAB/inventory.yaml" --yes >"$W/out" 2>&1 ||
    { cat "$W/out" >&2; exit 1; }
  [ "$(grep -c 'echo step-' "$W/out" || true)" -ge "$1" ] || { cat "$W/out" >&2; exit 1; }
}
ssh_loop() { # N
  local i n out
  for i in "${HOSTS[@]}"; do
    for ((n = 1; n <= $1; n++)); do
      out=$("${SSH[@]}" -o ControlPath="$W/cm-$i" "$(addr "$i")" "echo step-$n")
      [ "$out" = "step-$n" ] || { echo "ssh loop: master-$i said '$out'" >&2; exit 1; }
    done
  done
}
declare -A T
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 0; r <= ROUNDS; r++)); do
  for row in remedy-$STEPS remedy-1 ssh-$STEPS ssh-1; do
    n=${row#*-}
    t0=$(now)
    case $row in remedy-*) remedy_run "$n" ;; ssh-*) ssh_loop "$n" ;; esac
    t1=$(now)
    [ "$r" -eq 0 ] || T[$row]+="$(((t1 - t0) / 1000)) "
  done
done
events=$(python3 -c '
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
run = c.execute("select run_id from runs where runbook = ? order by started_ms desc limit 1", (sys.argv[2],)).fetchone()[0]
print(c.execute("select count(*) from events where run_id = ?", (run,)).fetchone()[0])' \
  "$REMEDY_HOME/remedy.db" "steps-$STEPS")
rate=$("$APPEND_RATE" "$W" 2000)
echo "load average (1, 5, 15 min): $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"

python3 - "$STEPS" "$events" "$rate" "${T[remedy-$STEPS]}" "${T[remedy-1]}" "${T[ssh-$STEPS]}" "${T[ssh-1]}" <<'EOF'
import statistics, sys, re
steps, events, rate = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
med = [statistics.median(map(int, a.split())) / 1e3 for a in sys.argv[4:8]]  # ms
rn, r1, sn, s1 = med
per_r = (rn - r1) / ((steps - 1) * 3)
per_s = (sn - s1) / ((steps - 1) * 3)
print(f"median wall, ms: remedy {steps} steps {rn:.0f}, 1 step {r1:.0f}; ssh loop {steps} commands {sn:.0f}, 1 command {s1:.0f} (3 hosts)")
print(f"per step and host: remedy {per_r:.2f} ms, ssh ControlPath loop {per_s:.2f} ms: {per_r / per_s:.2f}x")
print(f"journal: {rate}")
eps = float(re.search(r"([0-9.]+) events/s", rate).group(1))
print(f"the {steps}-step run journaled {events} events: {events / eps * 1e3:.0f} ms at that rate, {events / eps * 1e3 / rn * 100:.0f}% of its {rn:.0f} ms")
EOF
