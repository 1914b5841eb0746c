// Package testenv starts the external programs that tusk's integration tests
// run against: a throwaway PostgreSQL server (Debian's 15, or 14, 16, 17 or 18
// from the builds scripts/install-test-deps.sh caches, with 15's client
// programs), a MinIO server, and the tusk binary itself.
//
// Everything a harness creates lives in temporary directories removed by
// t.Cleanup, listens only on 127.0.0.1 or unix sockets, and is stopped by
// t.Cleanup, so tests using it may run in parallel. When a program is missing
// the test is skipped, unless CI or TUSK_TEST_REQUIRE is set: then it fails, so
// that a skip never hides in CI. scripts/install-test-deps.sh installs
// everything.
package testenv

import (
	"os"
	"testing"
)

// Require skips the test when what (e.g. "initdb", "minio") is unavailable,
// unless the environment variable CI or TUSK_TEST_REQUIRE is set non-empty, in
// which case it fails the test with a sentence saying what is missing and how
// to install it. why says why what is considered unavailable.
func Require(t testing.TB, what string, available bool, why string) {
	t.Helper()
	if available {
		return
	}
	if env := requiredBy(); env != "" {
		t.Fatalf("%s is missing (%s); install it with %s. This is a failure, not a skip, because %s is set.",
			what, why, installHint(what), env)
		return // for fakes in tests; testing.T's Fatalf does not return
	}
	t.Skipf("skipping: %s is missing (%s); install it with %s, or set TUSK_TEST_REQUIRE=1 to make this a failure.",
		what, why, installHint(what))
}

// requiredBy returns the name of the environment variable that forbids
// skipping, or "" when skipping is allowed.
func requiredBy() string {
	for _, name := range []string{"TUSK_TEST_REQUIRE", "CI"} {
		if os.Getenv(name) != "" {
			return name
		}
	}
	return ""
}

func installHint(what string) string {
	switch what {
	case "initdb", "pg_ctl", "postgres", "psql", "pg_basebackup", "pg_verifybackup", "postgresql":
		return "`apt-get install -y postgresql-15` or `scripts/install-test-deps.sh`"
	case "minio":
		return "`scripts/install-test-deps.sh`, which builds MinIO once into " +
			"${XDG_CACHE_HOME:-$HOME/.cache}/tusk/bin/minio (or set TUSK_MINIO to a minio binary)"
	case "postgres user":
		return "`useradd --system --user-group --home-dir /var/lib/postgresql postgres` " +
			"or `scripts/install-test-deps.sh`"
	case "tmpfs mount":
		return "root (or CAP_SYS_ADMIN in a container): run the tests as root"
	default:
		return "`scripts/install-test-deps.sh`"
	}
}
