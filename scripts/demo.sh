#!/usr/bin/env bash
# make demo: the whole job of tusk on a throwaway PostgreSQL 15 cluster and a
# local-folder repository, in plain words:
#   archive WAL with tusk wal-push, take a backup under load with backup-push,
#   record a moment and a checksum of the data, keep writing (and lose data),
#   restore to the recorded moment with backup-fetch --recover, and show that
#   the restored data matches the checksum exactly; then the nightly job:
#   another backup-push, delete retain FULL 1 and delete garbage.
# Everything lives in one temporary folder, removed at the end. Exits non-zero
# if anything differs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PG_BIN=/usr/lib/postgresql/15/bin
step() { printf '\n==> %s\n' "$*"; }

bash scripts/install-test-deps.sh postgres

work=$(mktemp -d /tmp/tusk-demo-XXXXXX)
chmod 755 "$work"
# PostgreSQL refuses to run as root: when we are root, it runs as postgres.
if [[ $(id -u) -eq 0 ]]; then
	chown postgres: "$work"
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi
port=$((20000 + RANDOM % 20000))
port2=$((port + 1))
cleanup() {
	as_pg "$PG_BIN/pg_ctl" -D "$work/restored" stop -m immediate >/dev/null 2>&1 || true
	as_pg "$PG_BIN/pg_ctl" -D "$work/primary" stop -m immediate >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

step "building tusk"
CGO_ENABLED=0 go build -o "$work/tusk" .
tusk=$work/tusk
repo=file://$work/repo
export TUSK_REPO=$repo PGHOST=$work PGPORT=$port PGUSER=postgres TUSK_LOG_LEVEL=warn
sql() { as_pg "$PG_BIN/psql" -XAtq -v ON_ERROR_STOP=1 -h "$1" -p "$2" -U postgres -d postgres -c "$3"; }
checksum_sql="SELECT md5(string_agg(aid::text || ':' || abalance::text, ',' ORDER BY aid)) FROM pgbench_accounts"

step "creating a PostgreSQL 15 cluster in $work/primary, archiving with: tusk wal-push %p"
as_pg mkdir -p "$work/repo"
as_pg "$PG_BIN/initdb" -D "$work/primary" -U postgres -A trust --data-checksums >/dev/null
cat >>"$work/primary/postgresql.conf" <<CONF
listen_addresses = ''
port = $port
unix_socket_directories = '$work'
archive_mode = on
archive_command = 'TUSK_REPO=$repo TUSK_LOG_LEVEL=warn $tusk wal-push %p'
CONF
as_pg "$PG_BIN/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null

step "loading data: pgbench -i -s 10 (1 million accounts)"
as_pg "$PG_BIN/pgbench" -h "$work" -p "$port" -U postgres -i -s 10 -q postgres 2>/dev/null

step "taking a base backup with tusk backup-push while pgbench writes"
as_pg "$PG_BIN/pgbench" -h "$work" -p "$port" -U postgres -c 2 -T 6 -n postgres >/dev/null &
load=$!
"$tusk" backup-push "$work/primary"
wait "$load"
"$tusk" backup-list

step "more writes, then recording the moment to come back to"
as_pg "$PG_BIN/pgbench" -h "$work" -p "$port" -U postgres -c 2 -t 500 -n postgres >/dev/null
sleep 0.2
moment=$(sql "$work" "$port" "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
sleep 0.2
want=$(sql "$work" "$port" "$checksum_sql")
echo "moment: $moment"
echo "checksum of pgbench_accounts at that moment: $want"

step "the accident: more writes, then every balance is wiped"
as_pg "$PG_BIN/pgbench" -h "$work" -p "$port" -U postgres -c 2 -t 500 -n postgres >/dev/null
sql "$work" "$port" "UPDATE pgbench_accounts SET abalance = 0"
now=$(sql "$work" "$port" "$checksum_sql")
echo "checksum now: $now"
seg=$(sql "$work" "$port" "SELECT pg_walfile_name(pg_current_wal_lsn())")
sql "$work" "$port" "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
	last=$(sql "$work" "$port" "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	[[ $last > $seg || $last == "$seg" ]] && break
	sleep 0.1
done
echo "WAL archived up to $last"

step "restoring to the moment: tusk backup-fetch $work/restored LATEST --target-time '$moment' --target-action promote --recover"
"$tusk" backup-fetch "$work/restored" LATEST --target-time "$moment" --target-action promote \
	--recover --port "$port2" --socket-dir "$work"

step "comparing"
got=$(sql "$work" "$port2" "$checksum_sql")
echo "checksum recorded at the moment: $want"
echo "checksum of the restored data:   $got"
if [[ $got != "$want" ]]; then
	echo "demo FAILED: the restored data differs from the recorded moment" >&2
	exit 1
fi
echo "The restored cluster holds exactly the data of $moment."

step "the nightly job: tusk backup-push, then tusk delete retain FULL 1 (a dry run first) and tusk delete garbage"
"$tusk" backup-push "$work/primary"
"$tusk" delete retain FULL 1
"$tusk" delete retain FULL 1 --confirm
"$tusk" delete garbage --confirm
"$tusk" backup-list
echo
echo "Done. Cleaning up."
