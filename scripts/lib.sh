# lib.sh holds what the scripts that run a command next to throwaway
# servers (with-postgres.sh, with-nats.sh) share. Source it; it defines
# functions and the variable child, and runs nothing.

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
		return
	fi
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# trap_cleanup makes the function named $1 run on every way out of the
# script, which then exits with the status it had. On INT or TERM it first
# passes the signal on to the command's whole process group (it may be a
# shell running go test, running a test binary) and waits for it: a CI
# timeout must not leave a server or a test running.
child=
trap_cleanup() {
	_cleanup_fn=$1
	trap _on_exit EXIT
	trap '_on_signal INT 130' INT
	trap '_on_signal TERM 143' TERM
}

_on_exit() {
	local status=$?
	trap - EXIT INT TERM
	"$_cleanup_fn"
	exit "$status"
}

_on_signal() {
	if [[ -n $child ]]; then
		kill -"$1" -- -"$child" 2>/dev/null || kill -"$1" "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	exit "$2"
}

# run_command runs "$@" and exits with its status. It runs in the
# background, so that signals reach the traps at once; in a process group
# of its own (set -m), so that a signal reaches all of it, and with SIGINT
# restored, which bash ignores in background jobs otherwise; with the
# script's stdin, which a background command would otherwise lose.
run_command() {
	local status
	set +e
	set -m
	(
		trap - INT QUIT
		exec "$@"
	) <&0 &
	child=$!
	set +m
	wait "$child"
	status=$?
	set -e
	exit "$status"
}
