// Package archive moves WAL files between PostgreSQL and the repository:
// wal-push's upload with overwrite protection and wal-fetch's verified
// download. What the files are called and where they go is package wal's.
package archive
