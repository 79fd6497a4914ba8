#!/bin/sh
# pyapp-db entrypoint: initialise an empty data directory once, then run
# mariadbd in the foreground as user mysql.
#   entrypoint.sh              start (initialising on first start)
#   entrypoint.sh healthcheck  exit 0 when initialised and answering
set -eu

datadir=/var/lib/mysql
socket=/run/mysqld/mysqld.sock
marker=$datadir/.pyapp-initialised

log() { printf 'pyapp-db: %s\n' "$*" >&2; }
die() { log "error: $1"; exit 1; }

if [ "${1:-}" = healthcheck ]; then
  [ -f "$marker" ] || { echo "not initialised yet"; exit 1; }
  exec mariadb --protocol=socket --socket="$socket" -uroot -N -e 'SELECT "ok"'
fi

# Names go into SQL identifiers: allow only the safe ones.
for name in "$MARIADB_DATABASE" "$MARIADB_USER"; do
  printf '%s' "$name" | grep -Eq '^[A-Za-z0-9_]{1,64}$' || die "'$name' is not a valid database or user name (letters, digits, _)"
done

mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld "$datadir"

if [ ! -f "$marker" ]; then
  [ -r "$MARIADB_PASSWORD_FILE" ] && [ -s "$MARIADB_PASSWORD_FILE" ] \
    || die "no password in $MARIADB_PASSWORD_FILE; give the service a secret (docker secret create ...)"
  [ -z "$(ls -A "$datadir")" ] || die "$datadir is not empty but was not initialised by this image; refusing to touch it"
  log "empty $datadir: initialising database '$MARIADB_DATABASE' and user '$MARIADB_USER'"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=socket >/dev/null
  # A private server without networking while the user is created.
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  i=0
  until mariadb --protocol=socket --socket=/run/mysqld/init.sock -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 60 ] || die "the server did not start for initialisation"
    kill -0 "$pid" 2>/dev/null || die "the server exited during initialisation"
    sleep 1
  done
  # The password reaches the server on stdin, never on a command line.
  pw=$(sed "s/'/''/g; s/\\\\/\\\\\\\\/g" "$MARIADB_PASSWORD_FILE" | head -n1)
  mariadb --protocol=socket --socket=/run/mysqld/init.sock -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;
CREATE USER IF NOT EXISTS '$MARIADB_USER'@'%' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
FLUSH PRIVILEGES;
SQL
  unset pw
  kill "$pid"
  wait "$pid" || true
  touch "$marker"
  chown mysql:mysql "$marker"
  log "initialised"
fi

log "starting mariadbd"
exec mariadbd --user=mysql --datadir="$datadir" --socket="$socket" \
  --bind-address=0.0.0.0 --skip-name-resolve "$@"
