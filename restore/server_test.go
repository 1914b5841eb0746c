package restore

import "testing"

func TestProgramMajor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		out  string
		want int
		ok   bool
	}{
		{"pg_ctl (PostgreSQL) 15.18\n", 15, true},
		{"pg_ctl (PostgreSQL) 14.23\n", 14, true},
		{"pg_ctl (PostgreSQL) 18beta1\n", 18, true},
		{"pg_ctl (PostgreSQL) 17.10 (Debian 17.10-1.pgdg120+1)\n", 17, true},
		{"something else\n", 0, false},
	}
	for _, c := range cases {
		got, ok := programMajor(c.out)
		if got != c.want || ok != c.ok {
			t.Errorf("programMajor(%q) = %d, %v; want %d, %v", c.out, got, ok, c.want, c.ok)
		}
	}
}
