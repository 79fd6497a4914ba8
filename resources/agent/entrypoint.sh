#!/bin/bash
# jenkinsctl agent entrypoint.  Runs as root only to set up sshd, then sshd
# runs in the foreground; builds log in over SSH as jenkins.
#
#   1. installs the host key and the authorized key from $JENKINSCTL_KEYS_DIR
#      (/run/jenkinsctl), put there by the provisioner: by `docker cp` /
#      put_archive before the first start, or by a read-only bind mount.
#      No key is ever generated here, so the key Jenkins pins is the one the
#      agent presents.
#   2. gives jenkins access to the mounted docker socket through a group with
#      the socket's group id (created when no group has it).  Never chmod 666:
#      access to the socket is root on the host, so it stays with its group.
#      A socket of group 0 is refused: jenkins would have to join group root,
#      which also opens every root-group file in the agent to builds.
#   3. makes $JENKINS_AGENT_WORKDIR (the node's remoteFS, mounted at the same
#      path as on the host) belong to jenkins, uid 1000, when the engine has
#      just created it (root-owned and empty).  A directory some host user
#      owns is never handed over: the agent refuses to start instead.
#   4. execs sshd -D -e.  sshd does not pass this process's environment to
#      logins, and nothing is copied to /etc/environment.
#
# `entrypoint.sh healthcheck` is the HEALTHCHECK: sshd answers with a banner.
set -euo pipefail

keys_dir=${JENKINSCTL_KEYS_DIR:-/run/jenkinsctl}
socket=${DOCKER_SOCKET:-/var/run/docker.sock}
port=${SSH_PORT:-22}
workdir=${JENKINS_AGENT_WORKDIR:-}
user=jenkins

log() { printf 'jenkinsctl-agent: %s\n' "$*" >&2; }
die() { log "error: $1"; [ -n "${2:-}" ] && log "hint: $2"; exit 1; }

healthcheck() {
  local banner
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  IFS= read -r -t 3 banner <&3 || return 1
  [[ $banner == SSH-2.0-* ]]
}

if [ "${1:-}" = healthcheck ]; then
  healthcheck
  exit $?
fi
[ "$(id -u)" = 0 ] || die "the entrypoint must start as root (it runs sshd; logins are jenkins)"

# --- 1. keys ----------------------------------------------------------------
host_key=$keys_dir/ssh_host_ed25519_key
[ -s "$host_key" ] || die "no host key at $host_key" \
  "jenkinsctl generates one per agent (jenkinsctl keys list); the provisioner installs it before start"
[ -s "$keys_dir/authorized_keys" ] || die "no authorized key at $keys_dir/authorized_keys" \
  "the provisioner installs the controller's public key there before start"
install -m 0600 -o root -g root "$host_key" /etc/ssh/ssh_host_ed25519_key
if [ -s "$host_key.pub" ]; then
  install -m 0644 -o root -g root "$host_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
else
  ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key >/etc/ssh/ssh_host_ed25519_key.pub
fi
install -m 0644 -o root -g root "$keys_dir/authorized_keys" "/etc/ssh/authorized_keys.d/$user"
log "host key $(ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub | cut -d' ' -f2)"

# --- 2. the docker socket ---------------------------------------------------
if [ -S "$socket" ]; then
  gid=$(stat -c %g "$socket")
  [ "$gid" != 0 ] || die "$socket belongs to group 0 (root); $user would have to join group root to use it" \
    "give the socket a group of its own on the host, as Debian's docker.io does: groupadd docker, then restart dockerd (it uses group docker by default) or chgrp docker $socket"
  group=$(getent group "$gid" | cut -d: -f1 || true)
  if [ -z "$group" ]; then
    group=docker
    getent group "$group" >/dev/null && group=docker-$gid
    groupadd --gid "$gid" "$group"
  fi
  usermod --append --groups "$group" "$user"
  log "docker socket $socket: $user uses it through group $group (gid $gid)"
else
  log "warning: no docker socket at $socket; builds on this agent cannot use docker"
fi

# --- 3. the workspace root (remoteFS) ---------------------------------------
if [ -n "$workdir" ]; then
  [ ! -L "$workdir" ] || die "the agent root $workdir is a symbolic link" "set remote_fs to a real directory"
  mkdir -p "$workdir"
  owner=$(stat -c %u "$workdir")
  if [ "$owner" != "$(id -u "$user")" ]; then
    # The engine creates a missing bind-mount source as an empty root-owned
    # directory: that one is the agent's to take.  Anything else is a host
    # directory with an owner, and builds (which hold the docker socket)
    # must not be able to write into it.  Only the top directory: what is
    # under it belongs to builds.
    if [ "$owner" = 0 ] && [ -z "$(ls -A "$workdir")" ]; then
      chown -h "$user:$user" "$workdir"
    else
      die "the agent root $workdir belongs to uid $owner on the host, not to $user (uid $(id -u "$user"))" \
        "jenkinsctl does not take over a directory that already has an owner: remove it to let the engine create it, chown it to $(id -u "$user") on the host, or set remote_fs to another path"
    fi
  fi
fi

# --- 4. sshd ----------------------------------------------------------------
mkdir -p /run/sshd
chmod 0755 /run/sshd
/usr/sbin/sshd -t -p "$port" || die "sshd rejected its configuration"
log "sshd listening on port $port"
exec /usr/sbin/sshd -D -e -p "$port"
