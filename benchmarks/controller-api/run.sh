#!/usr/bin/env bash
# Controller API latency under load: N concurrent clients reading the VM and job lists of a store holding 1,000 of each.
# Usage: benchmarks/controller-api/run.sh [clients=16] [seconds=5] [vms=1000] [jobs=1000]   (from anywhere; no root needed)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dotnet run -c Release --project "$here/XenAoe.ControllerApiLoad.csproj" -- "$@"
