#!/usr/bin/env bash
# with-nats.sh runs a command with NATS_URL naming the three servers of a
# throwaway JetStream cluster, and deletes the cluster afterwards.
#
#   scripts/with-nats.sh go test -race ./...
#
# The script
#   - builds nats-server $NATS_SERVER_VERSION with `go install` unless that
#     version is already built, into $(go env GOPATH)/bin as
#     nats-server-$NATS_SERVER_VERSION, and exports its path as
#     NATS_SERVER_BIN, so that tests can start servers of their own (to
#     kill them, say) without disturbing the shared cluster,
#   - unless NATS_URL is already set (then the command runs against those
#     servers and nothing is started), starts three servers clustered on
#     free ports of 127.0.0.1, each with JetStream storing in a directory of
#     its own under a temporary directory, waits until every one reports
#     itself healthy, and exports
#     NATS_URL=nats://127.0.0.1:P1,nats://127.0.0.1:P2,nats://127.0.0.1:P3
#     and NATS_SERVER_PIDS (their process IDs, same order, for benchmarks that
#     count their CPU time),
#   - runs the command, then stops the servers and deletes the directory on
#     every way out, and exits with the command's status.
#
# The servers run with JetStream's default settings, sync_interval
# included. Failing to build or start them is an error, never a reason to
# skip.
set -euo pipefail

NATS_SERVER_VERSION=v2.15.2

if [[ $# -eq 0 ]]; then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi

log() { echo "with-nats: $*" >&2; }

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The binary is built once per version and machine: a fresh clone finds it
# there after the first run.
bindir=$(go env GOPATH)/bin
bin=$bindir/nats-server-$NATS_SERVER_VERSION
if ! [[ -x $bin ]] || [[ $("$bin" --version 2>/dev/null) != "nats-server: $NATS_SERVER_VERSION" ]]; then
	log "building nats-server $NATS_SERVER_VERSION"
	mkdir -p "$bindir"
	build=$(mktemp -d "$bindir/.nats-server.XXXXXX")
	# GOTOOLCHAIN=local: the module names a newer patch toolchain than it
	# needs; build with the Go that is installed rather than fetch one.
	if ! GOTOOLCHAIN=local GOBIN=$build go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"; then
		rm -rf "$build"
		log "building nats-server failed"
		exit 1
	fi
	mv -f "$build/nats-server" "$bin"
	rm -rf "$build"
fi
export NATS_SERVER_BIN=$bin

if [[ -n "${NATS_URL:-}" ]]; then
	exec "$@"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/with-nats.XXXXXX")
pids=()

stop_servers() {
	local pid
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		# A server that does not stop within 10 s is killed.
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

# cleanup stops the servers and deletes the directory: on every way out,
# signals included (see trap_cleanup).
cleanup() {
	stop_servers
	rm -rf "$tmp"
}
trap_cleanup cleanup

# healthy reports whether the server monitored on port $1 answers its
# health check with 200 within 2 s: it is up, and its JetStream has joined
# the cluster and is current. A server that accepts the connection and
# does not answer (stopped, say) is not healthy.
healthy() {
	local status
	status=$(
		exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		IFS= read -r -t 2 line <&3 || exit 1
		printf '%s\n' "$line"
	) || return 1
	[[ $status == *" 200 "* ]]
}

# start_cluster starts three servers on fresh ports and waits until all
# are healthy; it fails (leaving them to stop_servers) if one exits or the
# cluster is not healthy within 60 s.
start_cluster() {
	local i client=() route=() http=() routes=""
	for i in 0 1 2; do
		client[i]=$(free_port)
		route[i]=$(free_port)
		http[i]=$(free_port)
		routes+="nats-route://127.0.0.1:${route[i]}, "
	done
	for i in 0 1 2; do
		mkdir -p "$tmp/n$i"
		cat >"$tmp/n$i.conf" <<-EOF
			server_name: n$i
			listen: 127.0.0.1:${client[i]}
			http: 127.0.0.1:${http[i]}
			jetstream {
			  store_dir: "$tmp/n$i"
			  max_memory_store: 256MB
			  max_file_store: 16GB
			}
			cluster {
			  name: audit-$$
			  listen: 127.0.0.1:${route[i]}
			  routes: [${routes%, }]
			}
		EOF
		"$bin" -c "$tmp/n$i.conf" >"$tmp/n$i.log" 2>&1 &
		pids+=($!)
	done
	local ok
	for _ in $(seq 1 600); do
		ok=1
		for i in 0 1 2; do
			if ! kill -0 "${pids[i]}" 2>/dev/null; then
				log "server n$i exited:"
				tail -n 20 "$tmp/n$i.log" >&2
				return 1
			fi
			healthy "${http[i]}" || ok=
		done
		if [[ -n $ok ]]; then
			NATS_URL="nats://127.0.0.1:${client[0]},nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]}"
			return 0
		fi
		sleep 0.1
	done
	log "the cluster did not become healthy within 60 s"
	for i in 0 1 2; do
		tail -n 20 "$tmp/n$i.log" >&2
	done
	return 1
}

# Another process may take a port between picking and binding it, so try
# a few times.
for attempt in 1 2 3 4 5; do
	if start_cluster; then
		break
	fi
	stop_servers
	rm -rf "${tmp:?}"/n*
	if [[ $attempt -eq 5 ]]; then
		log "the JetStream cluster failed to start"
		exit 1
	fi
	log "retrying with other ports (attempt $attempt failed)"
done
NATS_SERVER_PIDS="${pids[*]}"
export NATS_URL NATS_SERVER_PIDS
log "nats-server $NATS_SERVER_VERSION, JetStream cluster of 3 at $NATS_URL"

run_command "$@"
