package cli_test

import (
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/internal/cli"
)

// TestServeClusterFlagsNeedPostgres: the cluster flags are a usage error
// without PostgreSQL (SQLite stays single-process), and bad values are
// refused before anything starts.
func TestServeClusterFlagsNeedPostgres(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--instance", "a"}, "need --db postgres://"},
		{[]string{"--lease", "5s"}, "need --db postgres://"},
		{[]string{"--cluster-addr", "127.0.0.2", "--db", "sqlite:" + dir + "/x.db"}, "need --db postgres://"},
		{[]string{"--instance", "a", "--lease", "100ms", "--db", "postgres://u@127.0.0.1:1/db"}, "--lease must be at least 500ms"},
		{[]string{"--instance", "a", "--nodes-listen", "0.0.0.0", "--db", "postgres://u@127.0.0.1:1/db"}, "--cluster-addr must be an IP address"},
	} {
		var o, e serveBuffer
		code := cli.Main(t.Context(), append([]string{"serve", "--http", "127.0.0.1:0", "--data", dir}, tc.args...), &o, &e)
		if code != 2 || !strings.Contains(e.String(), tc.want) {
			t.Errorf("serve %v: exit %d, want 2 with %q\n%s", tc.args, code, tc.want, e.String())
		}
	}
}
