#!/usr/bin/env bash
# Installs what the benchmarks need beyond the integration tests' needs
# (scripts/install-test-deps.sh): pgBackRest, the peer that BenchmarkWALPush
# measures tusk against (Debian package pgbackrest, 2.45 on bookworm).
# Prints nothing when it is already there. Safe to run again.
set -euo pipefail

say() { echo "bench install-deps: $*" >&2; }

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		say "need root (or sudo) to run: $*"
		return 1
	fi
}

if ! command -v pgbackrest >/dev/null; then
	say "installing pgBackRest (apt-get install pgbackrest)"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >/dev/null
	command -v pgbackrest >/dev/null || { say "pgbackrest is installed but not in PATH"; exit 1; }
fi
