#!/usr/bin/env bash
# bench/etcd.sh — a benchmark, not a test.
#
# remedy's whole etcd maintenance (`remedy run etcd-maintenance`: status,
# snapshot to the jump host, physical compaction, rule-gated defrag of every
# member followers first and leader last with health gates, alarms, status)
# against the equivalent `etcdctl` sequence an SRE would script (snapshot save,
# endpoint status for the revision, compact --physical, defrag each endpoint
# followers first then the leader, endpoint health after each, alarm list), on
# the same lab's real 3-member etcd 3.6 (etcdctl: the lab's own, same release).
# Before each run the database is grown
# the same way (N keys of SIZE bytes written, then deleted), so both reclaim
# the same space. Reports wall time and the bytes reclaimed on every member.
#
# etcdctl reaches the members directly (the lab is on this machine);
# remedy goes through SSH tunnels to each master, as it would from a jump
# host. Needs root, scripts/setup, a release build (cargo build --release
# --bin remedy), GNU time.
#
# Usage: bench/etcd.sh [ROUNDS] (default 3); N and SIZE via env (default 1500, 4096);
# BASE: the lab's base address (default 127.0.97.10; masters on BASE+1..3).
# KEEP=1 keeps REMEDY_HOME (remedy's journal, and each run's output in
# round-N.log there) and prints where, to see where a slow round's time went
# (`REMEDY_HOME=… remedy audit show RUN`).
set -euo pipefail
ROUNDS=${1:-3}
N=${N:-1500}
SIZE=${SIZE:-4096}
REMEDY=${REMEDY:-$(pwd)/target/release/remedy}
export REMEDY_HOME=$(mktemp -d /tmp/bench-etcd.XXXXXX)
LAB=$REMEDY_HOME/lab
BASE=${BASE:-127.0.97.10}
PFX=${BASE%.*}.
LAST=${BASE##*.}
trap '"$REMEDY" lab down --dir "$LAB" >/dev/null 2>&1 || true; if [ "${KEEP:-}" = 1 ]; then echo "kept REMEDY_HOME=$REMEDY_HOME"; else rm -rf "$REMEDY_HOME"; fi' EXIT
"$REMEDY" lab up --dir "$LAB" --base-address "$BASE" >/dev/null
PKI=$LAB/hosts/master-1/etc-kubernetes/pki
EPS=(https://$PFX$((LAST + 1)):2379 https://$PFX$((LAST + 2)):2379 https://$PFX$((LAST + 3)):2379)
ectl() {
  "$LAB/bin/etcdctl" --cacert "$PKI/etcd/ca.crt" --cert "$PKI/etcd/healthcheck-client.crt" \
    --key "$PKI/etcd/healthcheck-client.key" "$@"
}
sizes() { # db sizes of the three members, space separated
  for ep in "${EPS[@]}"; do ectl --endpoints "$ep" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])'; done | paste -sd' '
}
grow() {
  local value; value=$(head -c "$SIZE" /dev/zero | tr '\0' v)
  # etcdctl has no batch put: one process per key.
  for ((i = 0; i < N; i++)); do ectl --endpoints "${EPS[0]}" put "/bench/$i" "$value" >/dev/null; done
  ectl --endpoints "${EPS[0]}" del --prefix /bench/ >/dev/null
}
now() { date +%s.%N; }
reclaimed() { python3 -c "import sys; b=list(map(int,sys.argv[1].split())); a=list(map(int,sys.argv[2].split())); print(sum(x-y for x,y in zip(b,a)))" "$1" "$2"; }

etcdctl_sequence() {
  local snap=$REMEDY_HOME/etcdctl-snap.db
  rm -f "$snap"
  ectl --endpoints "${EPS[0]}" snapshot save "$snap" >/dev/null
  local rev leader
  rev=$(ectl --endpoints "${EPS[0]}" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
  ectl --endpoints "${EPS[0]}" compact "$rev" --physical >/dev/null
  leader=$(ectl --endpoints "$(IFS=,; echo "${EPS[*]}")" endpoint status -w json | python3 -c '
import json,sys
for s in json.load(sys.stdin):
    if s["Status"]["leader"] == s["Status"]["header"]["member_id"]: print(s["Endpoint"])')
  for ep in "${EPS[@]}"; do
    [ "$ep" = "$leader" ] && continue
    ectl --endpoints "$ep" defrag >/dev/null
    ectl --endpoints "$ep" endpoint health >/dev/null
  done
  ectl --endpoints "$leader" defrag >/dev/null
  ectl --endpoints "$leader" endpoint health >/dev/null
  ectl --endpoints "${EPS[0]}" alarm list >/dev/null
}

remedy_run() {
  "$REMEDY" run etcd-maintenance -i "$LAB/inventory.yaml" --yes \
    -p snapshot_dir="$REMEDY_HOME/snaps" >"$REMEDY_HOME/round-$r.log" 2>&1
}

echo "load average (1, 5, 15 min) at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %-6s %10s %14s  %s\n' tool round seconds reclaimed sizes_before→after
for ((r = 1; r <= ROUNDS; r++)); do
  for tool in etcdctl remedy; do
    grow
    before=$(sizes)
    t0=$(now)
    if [ "$tool" = etcdctl ]; then etcdctl_sequence; else remedy_run; fi
    t1=$(now)
    after=$(sizes)
    printf '%-10s %-6s %10.2f %14s  %s → %s\n' "$tool" "$r" "$(python3 -c "print($t1-$t0)")" "$(reclaimed "$before" "$after")" "$before" "$after"
  done
done
echo "load average (1, 5, 15 min) at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
