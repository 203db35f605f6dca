#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of every module in the repository for a
# bounded time each (FUZZTIME, default 10s), one target at a time, and
# fails on the first finding. Findings are written under the package's
# testdata/fuzz directory, where they become regression tests.
#
#   scripts/fuzz.sh            # every target
#   FUZZTIME=1m scripts/fuzz.sh
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
count=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	# The module the package belongs to: the nearest go.mod above it.
	mod=$dir
	while [[ ! -f $mod/go.mod ]]; do mod=$(dirname "$mod"); done
	pkg=.
	[[ $dir != "$mod" ]] && pkg=./${dir#"$mod"/}
	for target in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$file" | cut -d' ' -f2); do
		echo "fuzz: $target in $dir for $fuzztime"
		(cd "$mod" && go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg")
		count=$((count + 1))
	done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | grep -v '/testdata/' | sort)
if [[ $count -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: $count targets ran for $fuzztime each, no findings"
