#!/usr/bin/env bash
# generate.sh compiles proto/ into Go: the messages (protoc-gen-go) and the
# Connect handlers and clients (protoc-gen-connect-go), into gen/ or into
# the directory given, which the freshness test compares with gen/.
#
#   ./generate.sh            # regenerate gen/
#   ./generate.sh DIR        # generate into DIR instead
#
# The plugins are the tool dependencies of go.mod, so their versions are
# those of the libraries the generated code runs against; they are built
# with GENERATE_GOFLAGS (the freshness test, running under -race, passes
# -race so that the build reuses the packages its own build compiled). The
# compiler is
# Debian's protobuf-compiler, with the well-known types of libprotobuf-dev;
# `make protoc` installs both. Its version is written into every .pb.go, so
# any other version is refused rather than producing a spurious diff.
set -euo pipefail

cd "$(dirname "$0")"
want_protoc="libprotoc 3.21.12"
include=/usr/include
out=${1:-gen}

if ! command -v protoc >/dev/null; then
	echo "generate.sh: protoc not found; run 'make protoc' at the repository's root" >&2
	exit 1
fi
if [[ "$(protoc --version)" != "$want_protoc" ]]; then
	echo "generate.sh: protoc is '$(protoc --version)', want '$want_protoc'" >&2
	exit 1
fi
if [[ ! -f $include/google/protobuf/timestamp.proto ]]; then
	echo "generate.sh: $include/google/protobuf/timestamp.proto not found; run 'make protoc' (libprotobuf-dev)" >&2
	exit 1
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# shellcheck disable=SC2086 # GENERATE_GOFLAGS is a list of flags
go build ${GENERATE_GOFLAGS:-} -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go connectrpc.com/connect/cmd/protoc-gen-connect-go

mkdir -p "$out"
protoc -I proto -I "$include" \
	--plugin=protoc-gen-go="$bin/protoc-gen-go" \
	--plugin=protoc-gen-connect-go="$bin/protoc-gen-connect-go" \
	--go_out="$out" --go_opt=paths=source_relative \
	--connect-go_out="$out" --connect-go_opt=paths=source_relative \
	$(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
