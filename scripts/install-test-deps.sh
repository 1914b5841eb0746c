#!/usr/bin/env bash
# Installs what tusk's integration tests need, and prints nothing when all of
# it is already there:
#   - PostgreSQL 15 server binaries (Debian package postgresql-15),
#   - the user postgres (tests run as root start the server as postgres),
#   - a MinIO binary, built once into ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bin
#     (outside the checkout, so fresh clones reuse it; never commit it).
# Safe to run again. With the argument "postgres" it stops before MinIO (make demo).
set -euo pipefail

readonly MINIO_MODULE=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
readonly PG_BIN=/usr/lib/postgresql/15/bin

say() { echo "install-test-deps: $*" >&2; }

# as_root runs a command as root: directly, or with sudo when available.
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

have_postgres() {
	local tool
	for tool in initdb pg_ctl postgres psql; do
		[[ -x $PG_BIN/$tool ]] || return 1
	done
}

if ! have_postgres; then
	say "installing PostgreSQL 15 (apt-get install postgresql-15)"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
	have_postgres || { say "postgresql-15 is installed but $PG_BIN lacks initdb, pg_ctl, postgres or psql"; exit 1; }
fi

if ! getent passwd postgres >/dev/null; then
	if [[ $(id -u) -eq 0 ]] || command -v sudo >/dev/null; then
		say "adding user postgres"
		as_root useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
	else
		# Only tests run as root switch to postgres.
		say "note: no user postgres; that is fine unless the tests run as root"
	fi
fi

[[ ${1:-} == postgres ]] && exit 0

bin_dir=${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bin
if [[ ! -x $bin_dir/minio ]]; then
	say "building MinIO once into $bin_dir (takes several minutes)"
	mkdir -p "$bin_dir"
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	# Outside our module, so that our go.mod does not interfere; into a
	# temporary GOBIN, so that an interrupted build leaves no half binary.
	(cd "$work" && GOFLAGS=-mod=mod GOBIN="$work/bin" go install "$MINIO_MODULE")
	mv "$work/bin/minio" "$bin_dir/minio.tmp.$$"
	mv "$bin_dir/minio.tmp.$$" "$bin_dir/minio"
fi
