#!/usr/bin/env bash
# WAL archiving and point-in-time recovery, holdfast beside pgBackRest, one
# after the other on identical clusters with the same workload:
#   - WAL push throughput under pgbench at full speed, with a WAL-heavy script
#     (4 clients, each transaction inserting 1,000 rows of ~300 bytes into a
#     filler table): segments per second, the .ready backlog and pg_wal's size
#     while it runs, the time to drain;
#   - base backup time and repository growth, first and second: the cluster is
#     pgbench's tables plus a frozen 1,000,000-row table that does not change;
#     the filler table is truncated after the load, so the second base backup
#     differs from the first by what the load left behind;
#   - restore-to-time wall time (restore, start, replay to the target, promote).
# pgBackRest: archive-async=y, process-max=2, compress-type=zst (level 3, as
# holdfast's repository), aes-256-cbc encryption (holdfast's repository is
# encrypted), full backups both times (it deduplicates nothing between fulls).
#
# Run as root (the servers run as postgres):
#   bench/pitr/run.sh [--scale N] [--load SECONDS] [--holdfast PATH]
# Needs: PostgreSQL 15 server and pgbench, pgbackrest (apt-get install pgbackrest).
set -euo pipefail

SCALE=20
LOAD=30
HOLDFAST=$(cd "$(dirname "$0")/../.." && pwd)/target/release/holdfast
while [ $# -gt 0 ]; do
    case "$1" in
        --scale) SCALE=$2; shift 2 ;;
        --load) LOAD=$2; shift 2 ;;
        --holdfast) HOLDFAST=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/pitr-bench.XXXXXX)
chmod 755 "$WORK"
chown postgres: "$WORK"
PORT_BASE=$((20000 + RANDOM % 20000))
trap 'for d in "$WORK"/*/data "$WORK"/*/restored; do [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1; done; rm -rf "$WORK"' EXIT

as_pg() { runuser -u postgres -- "$@"; }
sql() { as_pg "$PGBIN/psql" -h "$WORK" -p "$1" -U postgres -Atq -d postgres -c "$2"; }
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; }
size() { du -sb "$1" | cut -f1; }
mb() { echo "scale=1; $1 / 1048576" | bc; }

start_cluster() { # dir port archive_command
    local dir=$1 port=$2 cmd=$3
    as_pg mkdir -p "$dir"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres --auth-local=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >> "$dir/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$WORK'
listen_addresses = ''
wal_level = replica
archive_mode = on
archive_command = '$cmd'
max_wal_size = 1GB
shared_buffers = 256MB
timezone = 'UTC'
CONF
    echo "local replication all trust" >> "$dir/data/pg_hba.conf"
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

# Load at full speed; sample the archiver, the backlog and pg_wal every second.
push_throughput() { # name dir port
    local name=$1 dir=$2 port=$3
    local before; before=$(sql "$port" "SELECT archived_count FROM pg_stat_archiver")
    local lsn0; lsn0=$(sql "$port" "SELECT pg_current_wal_lsn()")
    local t0; t0=$(now)
    as_pg "$PGBIN/pgbench" -h "$WORK" -p "$port" -U postgres -c 4 -j 2 -T "$LOAD" -n -f "$WORK/heavy.sql" postgres >"$dir/pgbench.log" 2>&1 &
    local bench=$! max_ready=0 max_wal=0
    while kill -0 "$bench" 2>/dev/null; do
        local ready; ready=$(ls "$dir/data/pg_wal/archive_status" | grep -c '\.ready$' || true)
        local wal; wal=$(size "$dir/data/pg_wal")
        [ "$ready" -gt "$max_ready" ] && max_ready=$ready
        [ "$wal" -gt "$max_wal" ] && max_wal=$wal
        sleep 1
    done
    wait "$bench" || true
    local load_s; load_s=$(elapsed "$t0")
    local generated; generated=$(sql "$port" "SELECT ((pg_current_wal_lsn() - '$lsn0'::pg_lsn) / 16777216)::int")
    sql "$port" "SELECT pg_switch_wal()" >/dev/null
    local target; target=$(sql "$port" "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
    local t1; t1=$(now)
    until [ "$(sql "$port" "SELECT coalesce(last_archived_wal >= '$target', false) FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
    local drain_s; drain_s=$(elapsed "$t1")
    local after; after=$(sql "$port" "SELECT archived_count FROM pg_stat_archiver")
    local tps; tps=$(grep -o 'tps = [0-9.]*' "$dir/pgbench.log" | head -1 | cut -d' ' -f3 | cut -d. -f1)
    sql "$port" "TRUNCATE filler; CHECKPOINT" >/dev/null
    local total_s; total_s=$(echo "$load_s + $drain_s" | bc)
    printf '| %s | %s | %s | %s | %.1f | %s | %s MB | %.1f |\n' "$name" "$tps" "$generated" "$((after - before))" \
        "$(echo "($after - $before) / $total_s" | bc -l)" "$max_ready" "$(mb "$max_wal")" "$drain_s" >>"$WORK/push.md"
}

base_backup() { # name label command... ; appends a row
    local name=$1 label=$2 repo=$3; shift 3
    local s0; s0=$(size "$repo")
    local t0; t0=$(now)
    "$@" >/dev/null
    local t; t=$(elapsed "$t0")
    local grew; grew=$(( $(size "$repo") - s0 ))
    printf '| %s | %s | %.1f | %s MB |\n' "$name" "$label" "$t" "$(mb "$grew")" >>"$WORK/backup.md"
}

marked_target() { # port -> prints a time between two marked rows, after a little more work
    local port=$1
    sql "$port" "CREATE TABLE IF NOT EXISTS marks (id int, at timestamptz DEFAULT clock_timestamp())" >/dev/null
    sql "$port" "INSERT INTO marks (id) VALUES (1)" >/dev/null
    sleep 0.5
    local t; t=$(sql "$port" "SELECT clock_timestamp()")
    sleep 0.5
    sql "$port" "INSERT INTO marks (id) VALUES (2)" >/dev/null
    as_pg "$PGBIN/pgbench" -h "$WORK" -p "$port" -U postgres -c 2 -T 5 -n postgres >/dev/null 2>&1
    sql "$port" "SELECT pg_switch_wal()" >/dev/null
    local seg; seg=$(sql "$port" "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
    until [ "$(sql "$port" "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
    echo "$t"
}

echo "# work dir $WORK, scale $SCALE, load ${LOAD}s, $(nproc) cores" >&2
cat > "$WORK/heavy.sql" <<'SQL'
INSERT INTO filler SELECT repeat(md5(random()::text), 9) FROM generate_series(1, 1000);
SQL
chmod 644 "$WORK/heavy.sql"
prepare_data() { # port
    as_pg "$PGBIN/pgbench" -h "$WORK" -p "$1" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
    sql "$1" "CREATE TABLE archive_rows AS SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b FROM generate_series(1, 1000000) g" >/dev/null
    sql "$1" "CREATE TABLE filler (t text)" >/dev/null
    sql "$1" "VACUUM FREEZE" >/dev/null
}
echo 'pitr-bench-password' > "$WORK/password"; chown postgres: "$WORK/password"; chmod 600 "$WORK/password"

# --- holdfast
H=$WORK/holdfast; HP=$PORT_BASE
as_pg mkdir -p "$H"
as_pg "$HOLDFAST" repo init --repo "$H/repo" --password-file "$WORK/password" >/dev/null
hf_args="--repo $H/repo --password-file $WORK/password"
start_cluster "$H" "$HP" "$HOLDFAST wal push %p $hf_args --spool $H/spool"
prepare_data "$HP"
hf_backup() { as_pg "$HOLDFAST" repo backup --physical --host "$WORK" --port "$HP" --user postgres $hf_args; }
base_backup holdfast first "$H/repo" hf_backup
push_throughput holdfast "$H" "$HP"
base_backup holdfast "second (after the load)" "$H/repo" hf_backup
T=$(marked_target "$HP")
# The source cluster stops before the restore, as pgBackRest's below.
as_pg "$PGBIN/pg_ctl" -D "$H/data" -m fast stop >/dev/null
t0=$(now)
as_pg "$HOLDFAST" repo restore --physical --to-time "$T" --pgdata "$H/restored" --port $((HP + 1)) $hf_args >"$H/restore.log" 2>&1
hf_restore=$(elapsed "$t0")
hf_marks=$(sql $((HP + 1)) "SELECT string_agg(id::text, ',') FROM marks")
as_pg "$PGBIN/pg_ctl" -D "$H/restored" -m immediate stop >/dev/null 2>&1 || true

# --- pgBackRest
P=$WORK/pgbackrest; PP=$((PORT_BASE + 2))
as_pg mkdir -p "$P/repo" "$P/spool" "$P/log" "$P/lock"
cat > "$P/pgbackrest.conf" <<CONF
[global]
repo1-path=$P/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=pitr-bench-password
repo1-retention-full=10
compress-type=zst
archive-async=y
spool-path=$P/spool
process-max=2
log-path=$P/log
lock-path=$P/lock
log-level-console=warn
log-level-file=off
start-fast=y

[bench]
pg1-path=$P/data
pg1-port=$PP
pg1-socket-path=$WORK
CONF
chown postgres: "$P/pgbackrest.conf"
pbr="pgbackrest --config=$P/pgbackrest.conf --stanza=bench"
start_cluster "$P" "$PP" "$pbr archive-push %p"
as_pg $pbr stanza-create >/dev/null
prepare_data "$PP"
pbr_backup() { as_pg $pbr --type=full backup; }
base_backup pgBackRest "first (full)" "$P/repo" pbr_backup
push_throughput pgBackRest "$P" "$PP"
base_backup pgBackRest "second (full, after the load)" "$P/repo" pbr_backup
T=$(marked_target "$PP")
as_pg "$PGBIN/pg_ctl" -D "$P/data" -m fast stop >/dev/null
t0=$(now)
as_pg mkdir -p "$P/restored"; chmod 700 "$P/restored"
as_pg $pbr --pg1-path="$P/restored" --type=time --target="$T" --target-action=promote restore >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$P/restored" -l "$P/restored.log" -o "-p $((PP + 1))" -w start >/dev/null
until [ "$(sql $((PP + 1)) "SELECT NOT pg_is_in_recovery()" 2>/dev/null)" = t ]; do sleep 0.1; done
pbr_restore=$(elapsed "$t0")
pbr_marks=$(sql $((PP + 1)) "SELECT string_agg(id::text, ',') FROM marks")

echo
echo "WAL push under pgbench -c 4 -j 2 -T $LOAD -f heavy.sql at full speed (scale $SCALE):"
echo
echo '| tool | pgbench tps | segments written | segments archived | segments/s (load + drain) | max .ready backlog | max pg_wal | drain after load (s) |'
echo '|---|---|---|---|---|---|---|---|'
cat "$WORK/push.md"
echo
echo 'Base backups:'
echo
echo '| tool | backup | time (s) | repository growth |'
echo '|---|---|---|---|'
cat "$WORK/backup.md"
echo
echo 'Restore to a time between two marked rows (restore, start, replay, promote):'
echo
echo '| tool | wall time (s) | marked rows back |'
echo '|---|---|---|'
printf '| holdfast | %.1f | %s |\n' "$hf_restore" "$hf_marks"
printf '| pgBackRest | %.1f | %s |\n' "$pbr_restore" "$pbr_marks"
