// Package walg reads the base backups wal-g writes into a repository, beside
// tusk's own on the same prefix, following wal-g's source (commit 43fb039f;
// paths below are wal-g's): names (internal/databases/postgres/backup.go),
// stop sentinels and metadata.json (backup_sentinel_dto.go), files_metadata.json
// (internal/backup_file_description.go, files_metadata_dto.go), tablespace
// specs (tablespace_spec.go), and the restore of tar partitions and delta
// chains (backup.go, backup_fetch_handler.go, tar_interpreter.go,
// pagefile.go). Layout of a backup named N under basebackups_005/:
//
//	N_backup_stop_sentinel.json             the sentinel, written last
//	N/metadata.json                         times, LSNs, permanence
//	N/files_metadata.json                   every file, and which a delta skipped or holds as pages
//	N/tar_partitions/part_NNN.tar[.ext]     the data directory, from part_001
//	N/tar_partitions/backup_label.tar[.ext] backup_label and tablespace_map
//	N/tar_partitions/pg_control.tar[.ext]   global/pg_control, uploaded last
//
// A wal-g backup is described by a basebackup.Meta with Origin
// basebackup.OriginWALG, so that listing, choosing a backup for a target
// and recovery treat both kinds alike. tusk never writes into this layout.
package walg
