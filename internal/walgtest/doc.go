// Package walgtest builds wal-g repositories for tests: objects in wal-g's
// layout, codecs and encryption, byte for byte as wal-g writes them where
// the libraries allow (see each file for the wal-g source it follows), so
// that tests of tusk's reading need no wal-g binary (CI cannot build one).
//
// Everything here writes through a storage.Storage, the same one the test
// then points tusk at, beside tusk's own objects if the test likes.
package walgtest
