#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds, runs unit and integration tests (root needed for namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
dotnet build XenAoe.slnx -c Release
dotnet test XenAoe.slnx -c Release --no-build --logger "console;verbosity=normal" "$@"
