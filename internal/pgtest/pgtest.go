// Package pgtest gives tests throwaway PostgreSQL databases and, for tests
// that stop and start the server, throwaway clusters.
//
// Tests find a server through $OCKAMHUB_TEST_POSTGRES, a connection URL
// of a role that may create databases, such as
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (.ci/run
// starts a cluster and sets it). Without it they skip with a message
// saying how to run them, unless OCKAMHUB_REQUIRE_ALL=1 (as CI sets), in
// which case they fail.
//
// It is test support: import it only from _test.go files.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the test server's URL.
const Env = "OCKAMHUB_TEST_POSTGRES"

// RequireAllEnv names the variable that turns skips into failures.
const RequireAllEnv = "OCKAMHUB_REQUIRE_ALL"

// BinDir is where Debian's postgresql package (15 on bookworm) puts the
// server programs; StartCluster uses the newest /usr/lib/postgresql/*/bin
// when there is another version.
const BinDir = "/usr/lib/postgresql/15/bin"

// binDir returns the directory of initdb and pg_ctl, or "".
func binDir() string {
	if _, err := os.Stat(filepath.Join(BinDir, "initdb")); err == nil {
		return BinDir
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	best, bestV := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(d))))
		if err == nil && v > bestV {
			best, bestV = filepath.Dir(d), v
		}
	}
	return best
}

const howTo = `start PostgreSQL and set ` + Env + `, e.g.
  runuser -u postgres -- ` + BinDir + `/initdb -D /tmp/pg -A trust -U postgres --no-sync
  runuser -u postgres -- ` + BinDir + `/pg_ctl -D /tmp/pg -o "-k /tmp/pg -c listen_addresses=127.0.0.1 -p 5432 -c fsync=off" -w start
  export ` + Env + `='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
(.ci/run does this)`

// skip skips t with msg, or fails it under OCKAMHUB_REQUIRE_ALL=1.
func skip(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireAllEnv) == "1" {
		t.Fatal(msg + "\n" + RequireAllEnv + "=1 makes this a failure")
	}
	t.Skip(msg)
}

// URL returns the test server's URL, or skips (fails under
// OCKAMHUB_REQUIRE_ALL=1) when there is none.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(Env)
	if u == "" {
		skip(t, "this test needs PostgreSQL: "+howTo)
	}
	return u
}

// NewDatabase creates an empty database on the test server and returns its
// URL; the database is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, URL(t))
}

func newDatabase(t testing.TB, base string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", Env, err)
	}
	defer conn.Close(ctx)
	name := "ockamhub_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: dropping %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", Env, err)
	}
	u.Path = "/" + name
	return u.String()
}

// Cluster is a PostgreSQL server of the test's own, which it may stop and
// start.
type Cluster struct {
	bin  string // server programs
	dir  string // data directory and socket directory
	port int
	log  string
}

// StartCluster initialises and starts a throwaway cluster on 127.0.0.1 (a
// free port) with fsync off, stopped and removed when t ends. It needs the
// server programs in BinDir (Debian's postgresql package) and, when run as
// root, the postgres user; otherwise it skips (fails under
// OCKAMHUB_REQUIRE_ALL=1).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := binDir()
	if bin == "" {
		skip(t, "this test starts and stops its own PostgreSQL cluster and needs the server programs in "+BinDir+" (apt-get install -y postgresql)")
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			skip(t, "this test runs PostgreSQL's initdb, which refuses root, as the postgres user, and there is none (apt-get install -y postgresql creates it)")
		}
	}
	dir, err := os.MkdirTemp("", "ockamhub-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{bin: bin, dir: dir, port: freePort(t), log: filepath.Join(dir, "server.log")}
	t.Cleanup(func() {
		c.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			t.Fatalf("pgtest: chown postgres %s: %v\n%s", dir, err, out)
		}
	}
	if out, err := c.command(filepath.Join(c.bin, "initdb"), "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	// The free port may be taken between our check and the server's bind:
	// try a few.
	for try := 0; ; try++ {
		err := c.start()
		if err == nil {
			return c
		}
		log, _ := os.ReadFile(c.log)
		if try == 4 || !strings.Contains(string(log), "could not bind") {
			t.Fatalf("pgtest: %v\n%s", err, log)
		}
		c.port = freePort(t)
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (c *Cluster) pgctl(args ...string) ([]byte, error) {
	args = append([]string{"-D", c.data(), "-w", "-l", c.log}, args...)
	return c.command(filepath.Join(c.bin, "pg_ctl"), args...).CombinedOutput()
}

// Start starts the cluster (again) and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		log, _ := os.ReadFile(c.log)
		t.Fatalf("pgtest: %v\n%s", err, log)
	}
}

func (c *Cluster) start() error {
	os.Remove(c.log)
	opts := fmt.Sprintf("-k %s -c listen_addresses=127.0.0.1 -p %d -c fsync=off", c.dir, c.port)
	if out, err := c.pgctl("-o", opts, "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the cluster at once (mode "immediate"), dropping every
// connection, as a crash or a restart does.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if out, err := c.pgctl("-m", "immediate", "stop"); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// URL returns the URL of the cluster's postgres database.
func (c *Cluster) URL() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(c.port) + "/postgres?sslmode=disable"
}

// NewDatabase creates an empty database on the cluster, dropped when t
// ends if the cluster is running then.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, c.URL())
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
