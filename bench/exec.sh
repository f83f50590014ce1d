#!/usr/bin/env bash
# bench/exec.sh — a benchmark, not a test.
#
# Wall time (and the client's CPU time and peak RSS) of one read-only command,
# `cat /etc/hostname`, run on 3, 20 and 100 hosts by:
#   1. remedy exec     (target/release/remedy; a fresh process: no connection reuse)
#      and remedy run of a read-only runbook (one `shell` step, read_only, on
#      every host at once: preview, locks, journal, the step, the report)
#   2. parallel-ssh    (pssh, one OpenSSH client process per host), with OpenSSH's
#                      default key exchange and again with curve25519-sha256, the
#                      one remedy prefers (so the key exchange is not the difference)
#   3. ansible         (ansible-core ad-hoc `command`, pipelining on, ControlPersist on):
#                      "cold" = no ControlPersist master alive before the run,
#                      "warm" = the masters of the previous run are reused.
#
# The hosts are real OpenSSH servers started here: one sshd per host on
# $BENCH_NET.N:2222 (127.90.0.N by default), each in its own mount+UTS
# namespace with its own host key and its own /etc/hostname (bind-mounted),
# root's ~/.bashrc and ~/.profile masked
# with an empty file (root's real ones are slow here). All three tools use the
# same client key and the same known_hosts, with strict host-key checking.
#
# Every tool works on all hosts of a size at once (remedy --parallel, pssh -p,
# ansible -f: the size).
#
# Method: per size, one untimed warm-up round, then RUNS timed rounds; each round
# runs every row once, interleaved (remedy exec, remedy run, parallel-ssh,
# parallel-ssh x25519, ansible cold, ansible warm) so that load from other work
# on the machine hits them all alike. Every run's output is checked (each host's own hostname,
# nothing else); any wrong output or non-zero exit stops the benchmark with an
# error. Wall time is taken around `/usr/bin/time -f %M` (which gives the RSS),
# so each row includes the same few milliseconds of wrapper; CPU time is user +
# system of the client and the children it waited for (pssh's ssh processes;
# not ansible's detached ControlPersist masters).
#
# Needs: root, scripts/setup (openssh-server, pssh), a release build
# (cargo build --release --bin remedy), GNU time (/usr/bin/time). ansible-core is
# pip-installed into $BENCH_VENV (default /tmp/bench-venv) if it is not there.
#
# The servers' CPU is measured too (remedy and parallel-ssh rows): every sshd
# listener's own and its reaped children's user + system time (/proc/PID/stat:
# the per-connection sshd, the session, bash, cat), summed over all hosts,
# before and after the run, once every connection's processes are gone. Not for
# ansible: its ControlPersist connections outlive the run.
#
# REMEDY_B (optional): a second remedy binary, timed as one more row
# ("remedy exec, REMEDY_B") in the same interleaved rounds, for a before/after.
# NO_ANSIBLE=1 leaves the ansible rows out (a quicker before/after).
#
# Environment: REMEDY (binary), REMEDY_B, BENCH_VENV, RUNS (default 10), SIZES (default
# "3 20"; each 2..100, e.g. SIZES="3 20 100" RUNS=3), BENCH_NET (the hosts'
# /24, default 127.90.0: hosts on 127.90.0.1-N).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REMEDY=${REMEDY:-$ROOT/target/release/remedy}
VENV=${BENCH_VENV:-/tmp/bench-venv}
RUNS=${RUNS:-10}
SIZES=${SIZES:-"3 20"}
PORT=2222
# The hosts' addresses: $NET.1 … $NET.N (a /24 on loopback nobody else uses).
NET=${BENCH_NET:-127.90.0}
CMD='cat /etc/hostname'

die() { echo "bench: error: $*" >&2; exit 1; }

# ---- prerequisites ---------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die "needs root (sshd per host, mount namespaces)"
[ -x "$REMEDY" ] || die "no release binary at $REMEDY: run 'cargo build --release --bin remedy'"
REMEDY_B=${REMEDY_B:-}
[ -z "$REMEDY_B" ] || [ -x "$REMEDY_B" ] || die "REMEDY_B: no binary at $REMEDY_B"
for t in /usr/sbin/sshd ssh ssh-keygen parallel-ssh unshare /usr/bin/time python3; do
  command -v "$t" >/dev/null || die "missing $t (run scripts/setup; GNU time: apt-get install time)"
done
[[ "$RUNS" =~ ^[1-9][0-9]?$ ]] || die "RUNS must be 1..99"
MAXN=0
for s in $SIZES; do
  # (2 or more: remedy prefixes lines with the host only for several hosts)
  [[ "$s" =~ ^[0-9]+$ ]] && [ "$s" -ge 2 ] && [ "$s" -le 100 ] || die "SIZES: each 2..100"
  [ "$s" -gt "$MAXN" ] && MAXN=$s
done
if [ ! -x "$VENV/bin/ansible" ]; then
  echo "bench: installing ansible-core into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q ansible-core
fi
ANSIBLE=$VENV/bin/ansible

W=$(mktemp -d /tmp/remedy-bench.XXXXXX)
SSHD_PIDS=()

# ---- cleanup: every sshd we started, by PID; every ControlPersist master ----
alive() { # PID: running, and not a zombie
  local st
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
stop_masters() {
  local s pid
  for s in "$W"/cp/*; do
    [ -S "$s" ] || continue
    pid=$(ssh -o ControlPath="$s" -O check bench 2>&1 | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
    ssh -o ControlPath="$s" -O exit bench >/dev/null 2>&1 || true
    if [ -n "$pid" ]; then
      # An exited master is reparented to PID 1, which may leave it a zombie
      # for a while: a zombie counts as gone.
      for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.02; done
      if alive "$pid"; then kill "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$s"
  done
}
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  [ -d "$W/cp" ] && stop_masters
  for pid in "${SSHD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SSHD_PIDS[@]}"; do
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
    if alive "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  if [ "$rc" -eq 0 ]; then rm -rf "$W"; else echo "bench: failed (exit $rc); files kept in $W" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- hosts -----------------------------------------------------------------
mkdir -p /run/sshd "$W/cp" "$W/runs" "$W/ansible-tmp"
ssh-keygen -q -t ed25519 -N '' -C bench-client -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"
: >"$W/known_hosts"
for n in $(seq 1 "$MAXN"); do
  d=$W/h$n
  mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -C "h$n" -f "$d/ssh_host_ed25519_key"
  printf 'bench-host-%02d\n' "$n" >"$d/hostname"
  : >"$d/empty"
  echo "[$NET.$n]:$PORT $(cut -d' ' -f1,2 "$d/ssh_host_ed25519_key.pub")" >>"$W/known_hosts"
  cat >"$d/sshd_config" <<EOF
ListenAddress $NET.$n:$PORT
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
AuthorizedKeysFile $W/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
MaxStartups 200:30:400
MaxSessions 64
EOF
  script="hostname h-$n && mount --bind '$d/hostname' /etc/hostname"
  for f in /root/.bashrc /root/.profile /root/.bash_profile /root/.bash_login; do
    [ -e "$f" ] && script+=" && mount --bind '$d/empty' '$f'"
  done
  script+=" && exec /usr/sbin/sshd -D -e -f '$d/sshd_config'"
  # unshare (no --fork) and `sh -c 'exec ...'` keep the PID: $! is sshd's.
  unshare -m -u --propagation private sh -c "$script" >"$d/sshd.log" 2>&1 </dev/null &
  SSHD_PIDS+=("$!")
done
speaks_ssh() { # addr: our sshd answers with an SSH banner
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$PORT && head -c 4 <&3" 2>/dev/null | grep -q '^SSH-'
}
for n in $(seq 1 "$MAXN"); do
  pid=${SSHD_PIDS[$((n - 1))]}
  ok=
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || die "sshd for h$n exited: $(cat "$W/h$n/sshd.log")"
    if speaks_ssh "$NET.$n"; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || die "sshd for h$n not answering on $NET.$n:$PORT after 10 s"
  [ "$(cat /proc/"$pid"/comm)" = sshd ] || die "PID $pid for h$n is not sshd"
done

# ---- per-size inventories for the three tools ------------------------------
ANSIBLE_SSH_ARGS="-o ControlMaster=auto -o ControlPersist=300s -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes"
cat >"$W/ansible.cfg" <<EOF
[defaults]
host_key_checking = True
forks = $MAXN
interpreter_python = /usr/bin/python3
local_tmp = $W/ansible-tmp
nocolor = True
retry_files_enabled = False
[ssh_connection]
pipelining = True
ssh_args = $ANSIBLE_SSH_ARGS
control_path_dir = $W/cp
EOF
for s in $SIZES; do
  {
    echo "ssh: { user: root, identity_file: $W/client_key, known_hosts: $W/known_hosts }"
    echo "hosts:"
    for n in $(seq 1 "$s"); do echo "  h$n: { address: $NET.$n, port: $PORT }"; done
  } >"$W/inventory-$s.yaml"
  {
    echo "[all]"
    for n in $(seq 1 "$s"); do echo "h$n ansible_host=$NET.$n"; done
    echo "[all:vars]"
    echo "ansible_user=root"
    echo "ansible_port=$PORT"
    echo "ansible_ssh_private_key_file=$W/client_key"
  } >"$W/inventory-$s.ini"
  for n in $(seq 1 "$s"); do echo "$NET.$n:$PORT"; done >"$W/pssh-hosts-$s"
  for n in $(seq 1 "$s"); do printf 'h%d bench-host-%02d\n' "$n" "$n"; done | sort >"$W/expected-$s"
done

# The read-only runbook `remedy run` runs.
cat >"$W/read.yaml" <<EOF
runbook: read-hostname
summary: read /etc/hostname on every host
targets: all
strategy: parallel
steps:
  - id: read
    action: shell
    with: { cmd: "$CMD", read_only: true }
EOF

export REMEDY_HOME=$W/remedy-home NO_COLOR=1 ANSIBLE_CONFIG=$W/ansible.cfg ANSIBLE_HOME=$W/ansible-home \
  ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0

# cmd_<tool> SIZE MODE: the command line, one word per line (printed into the report).
cmd_remedy() { printf '%s\n' "$REMEDY" exec --parallel "$1" -i "$W/inventory-$1.yaml" all -- cat /etc/hostname; }
cmd_remedyb() { printf '%s\n' "$REMEDY_B" exec --parallel "$1" -i "$W/inventory-$1.yaml" all -- cat /etc/hostname; }
cmd_remedyrun() { printf '%s\n' "$REMEDY" run "$W/read.yaml" --parallel "$1" -i "$W/inventory-$1.yaml" --yes -o json; }
cmd_pssh() {
  printf '%s\n' parallel-ssh -i -h "$W/pssh-hosts-$1" -l root -p "$1" -t 60 -x "-i $W/client_key" \
    -O "UserKnownHostsFile=$W/known_hosts" -O StrictHostKeyChecking=yes \
    -O IdentitiesOnly=yes -O BatchMode=yes
  # x25519: the key exchange remedy prefers, instead of OpenSSH 9.2's default
  # sntrup761x25519 post-quantum hybrid.
  [ "${2:-}" = x25519 ] && printf '%s\n' -O KexAlgorithms=curve25519-sha256
  printf '%s\n' "$CMD"
}
cmd_ansible() {
  printf '%s\n' "$ANSIBLE" all -i "$W/inventory-$1.ini" -f "$1" -m command -a "$CMD" \
    -e "ansible_ssh_common_args='-o UserKnownHostsFile=$W/known_hosts'"
}

# parse_<tool> < stdout: "hN value" pairs, sorted.
parse_remedy() { awk '$2 == "|" { print $1, $3 }' | sort; }
parse_remedyb() { parse_remedy; }
parse_remedyrun() {
  python3 -c 'import json, sys
for h in json.load(sys.stdin)["hosts"]:
    print(h["host"], h["steps"][0]["result"]["stdout"].strip())' | sort
}
parse_pssh() {
  awk -v net="$NET." -v port=":$PORT" '
    /\[SUCCESS\]/ { h = $NF; sub(net, "", h); sub(port, "", h); getline; print "h" h, $0 }' | sort
}
parse_ansible() { awk '/ \| CHANGED \| rc=0 >>$/ { h = $1; getline; print h, $0 }' | sort; }

# server_cpu: "CHILDREN MS": how many processes the sshd listeners have now (a
# connection's sshd, until it is reaped), and the CPU time, in ms, the
# listeners and every process they reaped have used so far.
server_cpu() {
  python3 - "${SSHD_PIDS[@]}" <<'PY'
import os, sys
listeners = set(sys.argv[1:])
tick = os.sysconf("SC_CLK_TCK")
children, ticks = 0, 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    # fields[0] is stat's field 3 (state): ppid is field 4, utime..cstime 14..17.
    if fields[1] in listeners:
        children += 1
    if pid in listeners:
        ticks += sum(int(v) for v in fields[11:15])
print(children, ticks * 1000 // tick)
PY
}
# settled_server_cpu: server_cpu once no connection's process is left (5 s at most).
settled_server_cpu() {
  local n ms
  for _ in $(seq 1 100); do
    read -r n ms < <(server_cpu)
    [ "$n" -eq 0 ] && break
    sleep 0.05
  done
  [ "$n" -eq 0 ] || die "sshd connections still open after 5 s: $(for p in "${SSHD_PIDS[@]}"; do pgrep -a -P "$p"; done)"
  echo "$ms"
}

# run_one TOOL MODE SIZE ROUND: time one run, check its output, record ms and RSS.
run_one() {
  local tool=$1 mode=$2 size=$3 round=$4 base rc t0 t1
  base=$W/runs/$tool-$mode-$size-$round
  local -a cmd
  mapfile -t cmd < <("cmd_$tool" "$size" "$mode")
  local before=
  if [ "$tool$mode" = ansiblecold ]; then
    stop_masters
    [ -z "$(find "$W/cp" -type s)" ] || die "ControlPersist masters still alive before a cold run"
  fi
  [ "$tool$mode" = ansiblewarm ] && before=$(find "$W/cp" -type s -printf '%i %p\n' | sort)
  local srv0=
  if [ "$tool" != ansible ]; then
    # ansible's ControlPersist connections (from the warm row) are closed
    # first, so that the servers' CPU counts this run's connections only.
    stop_masters
    srv0=$(settled_server_cpu)
  fi
  rc=0
  t0=$(date +%s%N)
  timeout 300 /usr/bin/time -f '%M %U %S' -o "$base.rss" "${cmd[@]}" >"$base.out" 2>"$base.err" </dev/null || rc=$?
  t1=$(date +%s%N)
  if [ "$rc" -ne 0 ]; then
    cat "$base.out" "$base.err" >&2
    die "$tool ($mode, $size hosts, round $round) exited $rc"
  fi
  if ! "parse_$tool" <"$base.out" | diff -u "$W/expected-$size" - >"$base.diff"; then
    cat "$base.out" "$base.diff" >&2
    die "$tool ($mode, $size hosts, round $round): wrong output (diff above: expected vs got)"
  fi
  # Warm means reused: the same $size master sockets (same inodes) before and after.
  if [ "$tool$mode" = ansiblewarm ]; then
    [ "$(wc -l <<<"$before")" -eq "$size" ] || die "ansible warm run without $size ControlPersist masters"
    [ "$before" = "$(find "$W/cp" -type s -printf '%i %p\n' | sort)" ] ||
      die "ansible warm run did not reuse its ControlPersist masters"
  fi
  if [ "$round" != warmup ]; then
    echo $(((t1 - t0) / 1000)) >>"$W/$tool-$mode-$size.us"
    tail -n1 "$base.rss" | awk '{ print $1 }' >>"$W/$tool-$mode-$size.kb"
    tail -n1 "$base.rss" | awk '{ printf "%d\n", ($2 + $3) * 1000 }' >>"$W/$tool-$mode-$size.cpu"
    if [ -n "$srv0" ]; then echo $(($(settled_server_cpu) - srv0)) >>"$W/$tool-$mode-$size.srv"; fi
  fi
}

# stats FILE: median min max (of integers, one a line)
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END {
  m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'; }

TOOLS=("remedy plain")
[ -z "$REMEDY_B" ] || TOOLS+=("remedyb plain")
TOOLS+=("remedyrun plain" "pssh plain" "pssh x25519")
[ -n "${NO_ANSIBLE:-}" ] || TOOLS+=("ansible cold" "ansible warm")
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: $MAXN sshd up on $NET.1-$MAXN:$PORT; load average: $LOAD_START" >&2
for s in $SIZES; do
  for round in warmup $(seq 1 "$RUNS"); do
    echo "bench: $s hosts, round $round (${SECONDS}s)" >&2
    for tm in "${TOOLS[@]}"; do
      # shellcheck disable=SC2086
      run_one $tm "$s" "$round"
    done
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
stop_masters

# ---- report ----------------------------------------------------------------
label() {
  case "$1 $2" in
    "remedy plain") echo "remedy exec" ;;
    "remedyb plain") echo "remedy exec, REMEDY_B" ;;
    "remedyrun plain") echo "remedy run, read-only runbook" ;;
    "pssh plain") echo "parallel-ssh -i" ;;
    "pssh x25519") echo "parallel-ssh -i, kex curve25519-sha256 (as remedy)" ;;
    "ansible cold") echo "ansible, cold (no ControlPersist master)" ;;
    "ansible warm") echo "ansible, warm (ControlPersist reused)" ;;
  esac
}
echo
echo "$RUNS timed runs per row (after 1 warm-up round); wall time in ms; CPU = user + system of the client and its waited-for children; server CPU = the same for all sshd processes of the run (not for ansible, whose connections outlive it); peak RSS = the largest single process of the client's tree."
echo
echo "| hosts | tool | median ms | min ms | max ms | median / remedy exec | CPU ms (median) | server CPU ms (median) | peak RSS MiB (median) |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
for s in $SIZES; do
  read -r rmed _ _ < <(stats "$W/remedy-plain-$s.us")
  for tm in "${TOOLS[@]}"; do
    read -r tool mode <<<"$tm"
    read -r med min max < <(stats "$W/$tool-$mode-$s.us")
    read -r kb _ _ < <(stats "$W/$tool-$mode-$s.kb")
    read -r cpu _ _ < <(stats "$W/$tool-$mode-$s.cpu")
    srv=—
    [ -s "$W/$tool-$mode-$s.srv" ] && read -r srv _ _ < <(stats "$W/$tool-$mode-$s.srv")
    awk -v s="$s" -v l="$(label "$tool" "$mode")" -v med="$med" -v min="$min" -v max="$max" \
      -v r="$rmed" -v kb="$kb" -v cpu="$cpu" -v srv="$srv" 'BEGIN {
      printf "| %d | %s | %.1f | %.1f | %.1f | %.2fx | %.0f | %s | %.1f |\n", s, l, med/1000, min/1000, max/1000, med/r, cpu, srv, kb/1024 }'
  done
done
echo
[ -z "$REMEDY_B" ] || echo "REMEDY_B: $REMEDY_B, sha256 $(sha256sum "$REMEDY_B" | cut -c1-12) built $(date -u -r "$REMEDY_B" '+%F %T UTC')."
echo "Versions: remedy binary $REMEDY, sha256 $(sha256sum "$REMEDY" | cut -c1-12) built $(date -u -r "$REMEDY" '+%F %T UTC')" \
  "(work tree HEAD now: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))," \
  "$(ssh -V 2>&1 | cut -d, -f1), parallel-ssh $(parallel-ssh --version 2>&1)," \
  "ansible-core $("$VENV/bin/python" -c 'import ansible.release as r; print(r.__version__)')," \
  "python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')." \
  "Machine: $(nproc) cores; load average (1, 5, 15 min) $LOAD_START at the start, $LOAD_END at the end."
echo
echo "Commands (for the largest size; \$W = a temporary directory):"
for tm in "remedy plain" "remedyrun plain" "pssh plain" "pssh x25519" "ansible cold"; do
  read -r t mode <<<"$tm"
  echo
  printf '    '
  "cmd_$t" "$MAXN" "$mode" | while IFS= read -r w; do
    w=${w//$W/\$W}
    if [[ "$w" =~ [[:space:]\'] ]]; then printf '"%s" ' "$w"; else printf '%s ' "$w"; fi
  done
  echo
done
