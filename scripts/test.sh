#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs unit and integration tests (root needed for namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
dotnet build XenAoe.slnx -c Release
results=$(mktemp -d /tmp/xenaoe-test-results.XXXXXX)
trap 'rm -rf "$results"' EXIT
status=0
dotnet test XenAoe.slnx -c Release --no-build --logger "console;verbosity=normal" --logger trx --results-directory "$results" "$@" || status=$?
# One closing line over every test assembly, in the plain form CI reads.
passed=0 failed=0 skipped=0
for trx in "$results"/*.trx; do
  [[ -e $trx ]] || continue
  counters=$(grep -o '<Counters [^>]*>' "$trx")
  attr() { sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p" <<<"$counters"; }
  passed=$((passed + $(attr passed)))
  failed=$((failed + $(attr failed)))
  skipped=$((skipped + $(attr notExecuted)))
done
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
