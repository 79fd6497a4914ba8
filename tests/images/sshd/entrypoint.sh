#!/bin/sh
# Installs the host key and authorized_keys that the test mounted at
# /run/agent-keys (sshd insists on root-owned 0600 host keys, which a bind
# mount cannot promise), then runs sshd in the foreground.
#   AGENT_NO_JAVA=1  removes java from PATH, for the "no java" launch test.
set -eu
keys=/run/agent-keys
install -m 0600 -o root -g root "$keys/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root "$keys/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 -o jenkins -g jenkins /home/jenkins/.ssh
install -m 0600 -o jenkins -g jenkins "$keys/authorized_keys" /home/jenkins/.ssh/authorized_keys
if [ "${AGENT_NO_JAVA:-0}" = 1 ]; then
  rm -f /usr/bin/java /etc/alternatives/java
fi
exec /usr/sbin/sshd -D -e
