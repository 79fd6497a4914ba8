#!/bin/sh
# Installs the host key and authorized_keys that the test mounted at
# /run/agent-keys (sshd insists on root-owned 0600 host keys, which a bind
# mount cannot promise), then runs sshd in the foreground.
#   AGENT_NO_JAVA=1  removes java from PATH (the JRE stays under /usr/lib/jvm),
#                    for the "java off the login PATH" launch test.
#   AGENT_CHATTY=1   makes the login shell print a greeting, as a chatty
#                    .bashrc does, for the verifyNoHeaderJunk test.
set -eu
keys=/run/agent-keys
install -m 0600 -o root -g root "$keys/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 -o root -g root "$keys/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -m 0700 -o jenkins -g jenkins /home/jenkins/.ssh
install -m 0600 -o jenkins -g jenkins "$keys/authorized_keys" /home/jenkins/.ssh/authorized_keys
if [ "${AGENT_NO_JAVA:-0}" = 1 ]; then
  rm -f /usr/bin/java /etc/alternatives/java
fi
if [ "${AGENT_CHATTY:-0}" = 1 ]; then
  # Debian's bash reads ~/.bashrc for commands sshd runs; this line comes
  # before the "not interactive: return" guard, like many real .bashrc files.
  { echo 'echo "Welcome to $(hostname), $(whoami)!"'; cat /home/jenkins/.bashrc 2>/dev/null; } > /tmp/bashrc
  install -m 0644 -o jenkins -g jenkins /tmp/bashrc /home/jenkins/.bashrc
fi
exec /usr/sbin/sshd -D -e
