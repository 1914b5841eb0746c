package archive

// WALGPrefix is where wal-g keeps WAL: wal_005/<file name>[.<codec
// extension>] (wal-g's internal/databases/postgres/wal_push_handler.go,
// utility.WalPath). tusk reads there and never writes there.
const WALGPrefix = "wal_005/"
