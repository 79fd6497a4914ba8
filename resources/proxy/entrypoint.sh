#!/bin/sh
# Start HAProxy on the configuration jenkinsctl copied into the container.
#
# The configuration is checked first: a broken one makes the container exit
# with code 2 before anything is bound, so the proxy that already serves is
# never touched.  When an earlier proxy of the same target still runs, its
# listening sockets are taken over through its admin socket (-x, which the
# earlier proxy allows with "expose-fd listeners"): no connection attempt is
# refused while the two hand over.
set -eu
CFG=/usr/local/etc/haproxy/haproxy.cfg
if ! haproxy -c -q -f "$CFG"; then
    echo "jenkinsctl-proxy: the configuration $CFG is invalid; not starting" >&2
    exit 2
fi
FROM=$(cat /usr/local/etc/haproxy/takeover 2>/dev/null || true)
# Only a live socket: after a crash or a host reboot the file names a proxy
# that is gone, and HAProxy refuses to start when -x cannot connect.
if [ -n "$FROM" ] && echo "show info" | socat -t 2 - "UNIX-CONNECT:$FROM" >/dev/null 2>&1; then
    exec haproxy -db -f "$CFG" -x "$FROM"
fi
exec haproxy -db -f "$CFG"
