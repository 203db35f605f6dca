#!/usr/bin/env bash
# with-postgres.sh runs a command with DATABASE_URL pointing at a throwaway
# PostgreSQL cluster, and deletes the cluster afterwards.
#
#   scripts/with-postgres.sh go test -race ./...
#
# If DATABASE_URL is already set, the command runs against that server and
# nothing is started (nor is POSTGRES_CTL set, below). Otherwise the script
#   - installs PostgreSQL from the Debian packages if no server is found
#     under /usr/lib/postgresql/*/bin (needs root or sudo),
#   - creates a cluster in a temporary directory, owned by the postgres user
#     when run as root (initdb refuses to run as root), with trust
#     authentication, listening on 127.0.0.1 on a free port and on a unix
#     socket in the same directory,
#   - creates the database and exports
#     DATABASE_URL=postgres://postgres@127.0.0.1:PORT/audit?sslmode=disable,
#     and POSTGRES_CTL, a command that stops ("$POSTGRES_CTL stop") and
#     starts ("$POSTGRES_CTL start") the server, for fault tests,
#   - runs the command, then stops the server and deletes the directory on
#     every way out, and exits with the command's status.
#
# The server runs with PostgreSQL's default settings (fsync and
# synchronous_commit on), so that benchmarks measure what a real server
# does. Failing to start the server is an error, never a reason to skip.
set -euo pipefail

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi

if [[ -n "${DATABASE_URL:-}" ]]; then
	exec "$@"
fi

log() { echo "with-postgres: $*" >&2; }

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# find_bindir prints the bin directory of the newest PostgreSQL server
# installed from the Debian packages, or nothing.
find_bindir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
			echo "$d"
		fi
	done | sort -V | tail -n 1
}

# as_root runs a command as root, through sudo if needed.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo -n "$@"
	else
		log "need root to run: $*"
		return 1
	fi
}

install_postgres() {
	log "no PostgreSQL server found; installing the postgresql package"
	export DEBIAN_FRONTEND=noninteractive
	if ! as_root apt-get install -y --no-install-recommends postgresql; then
		as_root apt-get update
		as_root apt-get install -y --no-install-recommends postgresql
	fi
	# The package creates and starts a cluster of its own, which would
	# outlive this script; the script needs only the binaries.
	local c
	while read -r c; do
		as_root pg_dropcluster --stop ${c} >/dev/null 2>&1 || true
	done < <(pg_lsclusters --no-header 2>/dev/null | awk '{print $1, $2}')
}

bindir=$(find_bindir)
if [[ -z $bindir ]]; then
	install_postgres
	bindir=$(find_bindir)
	if [[ -z $bindir ]]; then
		log "PostgreSQL was installed but no server was found under /usr/lib/postgresql/*/bin"
		exit 1
	fi
fi

# The cluster belongs to the postgres user when we are root, since initdb
# and postgres refuse to run as root; otherwise to whoever runs the script.
run_as_owner() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# As root the directory goes under /tmp, which the postgres user can reach
# whatever TMPDIR says.
tmpbase=${TMPDIR:-/tmp}
if [[ $EUID -eq 0 ]]; then
	tmpbase=/tmp
fi
tmp=$(mktemp -d "$tmpbase/with-postgres.XXXXXX")
data=$tmp/data
started=

# cleanup stops the server and deletes the directory: on every way out,
# signals included (see trap_cleanup).
cleanup() {
	if [[ -n $started ]]; then
		run_as_owner "$bindir/pg_ctl" stop -D "$data" -m fast -w >/dev/null 2>&1 ||
			run_as_owner "$bindir/pg_ctl" stop -D "$data" -m immediate -w >/dev/null 2>&1 || true
	fi
	rm -rf "$tmp"
}
trap_cleanup cleanup

chmod 700 "$tmp"
if [[ $EUID -eq 0 ]]; then
	chown postgres: "$tmp"
fi

run_as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust \
	--encoding=UTF8 --locale=C >"$tmp/initdb.log" 2>&1 || {
	cat "$tmp/initdb.log" >&2
	log "initdb failed"
	exit 1
}

# Another process may take the port between picking and binding it, so try
# a few.
started=1
for attempt in 1 2 3 4 5; do
	port=$(free_port)
	if run_as_owner "$bindir/pg_ctl" start -D "$data" -w -t 60 -l "$tmp/postgres.log" \
		-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$tmp'" >/dev/null; then
		break
	fi
	run_as_owner "$bindir/pg_ctl" stop -D "$data" -m immediate -w >/dev/null 2>&1 || true
	log "server did not start on port $port (attempt $attempt)"
	if [[ $attempt -eq 5 ]]; then
		cat "$tmp/postgres.log" >&2 || true
		log "PostgreSQL failed to start"
		exit 1
	fi
done

ready=
for _ in $(seq 1 100); do
	if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
		ready=1
		break
	fi
	sleep 0.1
done
if [[ -z $ready ]]; then
	cat "$tmp/postgres.log" >&2 || true
	log "PostgreSQL did not become ready"
	exit 1
fi

"$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres audit
export DATABASE_URL="postgres://postgres@127.0.0.1:$port/audit?sslmode=disable"

# Fault tests stop the server and start it again with "$POSTGRES_CTL stop"
# and "$POSTGRES_CTL start": pg_ctl run as the cluster's owner, with the
# directory and the options of this server.
owner=
[[ $EUID -eq 0 ]] && owner="runuser -u postgres --"
cat >"$tmp/pg_ctl" <<EOF
#!/usr/bin/env bash
case \${1:-} in
stop) exec $owner "$bindir/pg_ctl" stop -D "$data" -m fast -w ;;
start) exec $owner "$bindir/pg_ctl" start -D "$data" -w -t 60 -l "$tmp/postgres.log" \\
	-o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$tmp'" ;;
*) echo "usage: \$0 stop|start" >&2; exit 2 ;;
esac
EOF
chmod 755 "$tmp/pg_ctl"
export POSTGRES_CTL=$tmp/pg_ctl
log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $DATABASE_URL"

run_command "$@"
