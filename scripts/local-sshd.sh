# scripts/local-sshd.sh — sourced, not run: one real OpenSSH server on
# 127.0.0.1 (a free port) with its own host and client keys, for the scripts
# that need a host to reach over SSH without a lab (scripts/check-old-glibc,
# bench/binary.sh).
#
#   local_sshd DIR [INVENTORY_DIR]
# writes into DIR: client_key, known_hosts, sshd_config, sshd.log and
# inventory.yaml with one host `h1` (its key paths under INVENTORY_DIR, default
# DIR: what DIR is called where remedy runs, e.g. inside a chroot); sets
# SSHD_PID and SSHD_PORT; returns once the server answers with an SSH banner.
# The caller stops it: `kill "$SSHD_PID"` (its own EXIT trap).
# Needs root (sshd's privilege separation), OpenSSH and python3.

local_sshd() {
  local d=$1 inv=${2:-$1}
  mkdir -p /run/sshd "$d"
  ssh-keygen -q -t ed25519 -N '' -C remedy-client -f "$d/client_key"
  ssh-keygen -q -t ed25519 -N '' -C remedy-host -f "$d/host_key"
  cp "$d/client_key.pub" "$d/authorized_keys"
  SSHD_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$d/host_key.pub")" >"$d/known_hosts"
  cat >"$d/sshd_config" <<EOF
ListenAddress 127.0.0.1:$SSHD_PORT
HostKey $d/host_key
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
UseDNS no
MaxStartups 200:30:400
MaxSessions 64
EOF
  printf '%s\n' "ssh: { user: root, identity_file: $inv/client_key, known_hosts: $inv/known_hosts }" \
    "hosts:" "  h1: { address: 127.0.0.1, port: $SSHD_PORT }" >"$d/inventory.yaml"
  /usr/sbin/sshd -D -e -f "$d/sshd_config" >"$d/sshd.log" 2>&1 </dev/null &
  SSHD_PID=$!
  local _
  for _ in $(seq 1 100); do
    kill -0 "$SSHD_PID" 2>/dev/null || { echo "sshd exited: $(cat "$d/sshd.log")" >&2; return 1; }
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSHD_PORT && head -c 4 <&3" 2>/dev/null | grep -q '^SSH-'; then
      return 0
    fi
    sleep 0.1
  done
  echo "sshd not answering on 127.0.0.1:$SSHD_PORT after 10 s: $(cat "$d/sshd.log")" >&2
  return 1
}
