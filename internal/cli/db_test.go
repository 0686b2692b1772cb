package cli_test

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/internal/cli"
	"github.com/ockamhub/ockamhub/internal/pgtest"
)

// runDB runs "ockamhub db ARGS" in-process and returns its output and exit
// code.
func runDB(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e serveBuffer
	code = cli.Main(t.Context(), append([]string{"db"}, args...), &o, &e)
	return o.String(), e.String(), code
}

var appliedLine = regexp.MustCompile(`(?m)^1\s+0001_init\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)

// checkDB migrates the database named by flags (pending before) and checks
// what migrate and status print.
func checkDB(t *testing.T, name string, flags ...string) {
	t.Helper()
	out, errOut, code := runDB(t, append([]string{"migrate"}, flags...)...)
	if code != 0 || !strings.Contains(out, "applied 0001_init\n") || !strings.Contains(out, name+": schema at version ") {
		t.Fatalf("db migrate %v: exit %d\n%s%s", flags, code, out, errOut)
	}
	out, errOut, code = runDB(t, append([]string{"migrate"}, flags...)...)
	if code != 0 || strings.Contains(out, "applied") {
		t.Fatalf("second db migrate %v: exit %d, want 0 and nothing applied\n%s%s", flags, code, out, errOut)
	}
	out, errOut, code = runDB(t, append([]string{"status"}, flags...)...)
	if code != 0 || !strings.HasPrefix(out, "VERSION  NAME") || !appliedLine.MatchString(out) || !strings.Contains(out, ", 0 pending\n") {
		t.Fatalf("db status %v: exit %d\n%s%s", flags, code, out, errOut)
	}
}

func TestDBSQLite(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := runDB(t, "status", "--data", dir); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("db status before any migrate: exit %d, want 1 (no database)\n%s", code, errOut)
	}
	checkDB(t, "sqlite:"+filepath.Join(dir, "ockamhub.db"), "--data", dir)
	file := filepath.Join(t.TempDir(), "hub.db")
	checkDB(t, "sqlite:"+file, "--db", "sqlite:"+file)
}

// TestServeSQLiteDB checks that serve --db sqlite:PATH keeps its data in
// PATH rather than under --data.
func TestServeSQLiteDB(t *testing.T) {
	file := filepath.Join(t.TempDir(), "elsewhere.db")
	p := startServe(t, t.TempDir(), serveNodePorts(), "--db", "sqlite:"+file)
	p.stop(t)
	out, errOut, code := runDB(t, "status", "--db", "sqlite:"+file)
	if code != 0 || !appliedLine.MatchString(out) {
		t.Fatalf("db status of serve's --db file: exit %d\n%s%s", code, out, errOut)
	}
}

func TestDBPostgres(t *testing.T) {
	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "hidden-pw-42")
	dsn := u.String()
	out, errOut, code := runDB(t, "status", "--db", dsn)
	if code != 0 || !regexp.MustCompile(`(?m)^1\s+0001_init\s+pending$`).MatchString(out) {
		t.Fatalf("db status of a new database: exit %d, want 0001_init pending\n%s%s", code, out, errOut)
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	checkDB(t, u.String(), "--db", dsn)
	out, errOut, _ = runDB(t, "status", "--db", dsn)
	if strings.Contains(out+errOut, "hidden-pw-42") {
		t.Fatalf("db status shows the password:\n%s%s", out, errOut)
	}
	// An unreachable server: a one-line error without the password.
	u.Host = "127.0.0.1:1"
	u.User = url.UserPassword(u.User.Username(), "hidden-pw-42")
	_, errOut, code = runDB(t, "status", "--db", u.String())
	if code != 1 || !strings.Contains(errOut, "database unavailable") || strings.Contains(errOut, "hidden-pw-42") {
		t.Fatalf("db status of an unreachable server: exit %d\n%s", code, errOut)
	}
}

func TestDBUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frob"},
		{"migrate", "extra"},
		{"status", "--db", "mysql://db/hub"},
		{"status", "--db", "hub.db"},
		{"status", "--nope"},
	} {
		_, errOut, code := runDB(t, args...)
		if code != 2 || !strings.Contains(errOut, "ockamhub db --help") {
			t.Errorf("db %v: exit %d, want 2 with a usage hint\n%s", args, code, errOut)
		}
	}
	if _, errOut, code := runDB(t, "--help"); code != 0 || !strings.Contains(errOut, "--db") || !strings.Contains(errOut, "migrate") {
		t.Errorf("db --help: exit %d\n%s", code, errOut)
	}
}
