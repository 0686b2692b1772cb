// Package deptest checks the import rules that keep the architecture's
// arrows pointing one way (STYLE §3.3): the protocol library imports no
// CLI, metrics, database or web code; encoding packages import no I/O
// packages of ours; test-support packages are imported only by tests.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/ockamhub/ockamhub"

type pkg struct {
	ImportPath string
	Deps       []string
	Imports    []string
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", mod+"/...").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

func TestImportRules(t *testing.T) {
	pkgs := list(t)
	// The protocol library: only the standard library, x/time, x/sync and
	// lower packages of ours.
	library := []string{"bare", "routing", "node", "transport/tcp", "noise", "securechannel", "service/echo", "service/forwarding", "hub", "internal/backoff", "portal"}
	allowedExternal := []string{"golang.org/x/time/", "golang.org/x/sync/"}
	testSupport := []string{"internal/vectorfile", "internal/faultnet", "internal/browsertest", "store/storetest", "githubauth/fakegithub", "internal/pgtest", "hub/hubtest"}
	rules := map[string][]string{ // package -> packages of ours it must not import (prefixes)
		"bare":          {mod + "/"},
		"noise":         {mod + "/"},
		"routing":       {mod + "/node", mod + "/transport", mod + "/hub"},
		"node":          {mod + "/transport", mod + "/hub", mod + "/service", mod + "/securechannel"},
		"transport/tcp": {mod + "/hub", mod + "/service", mod + "/securechannel"},
		"securechannel": {mod + "/transport", mod + "/hub"},
		"service/echo":  {mod + "/transport", mod + "/hub"},
		"portal":        {mod + "/transport", mod + "/hub", mod + "/securechannel", mod + "/service"},
		"web":           {mod + "/transport", mod + "/node", mod + "/securechannel"},
	}
	for _, name := range library {
		p, ok := pkgs[mod+"/"+name]
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			if !strings.Contains(strings.Split(imp, "/")[0], ".") {
				continue // standard library
			}
			if strings.HasPrefix(imp, mod+"/") {
				if name == "bare" || name == "noise" {
					t.Errorf("%s imports %s: it must import nothing of ours", name, imp)
				}
				continue
			}
			ok := false
			for _, a := range allowedExternal {
				ok = ok || strings.HasPrefix(imp, a)
			}
			if !ok {
				t.Errorf("library package %s imports %s: only the standard library, x/time and x/sync are allowed", name, imp)
			}
		}
	}
	for name, banned := range rules {
		p, ok := pkgs[mod+"/"+name]
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			for _, b := range banned {
				if strings.HasPrefix(imp, b) {
					t.Errorf("%s imports %s, against the dependency direction", name, imp)
				}
			}
		}
	}
	isTestSupport := func(path string) bool {
		for _, ts := range testSupport {
			if path == mod+"/"+ts {
				return true
			}
		}
		return false
	}
	for path, p := range pkgs {
		if isTestSupport(path) {
			continue // test support may use test-only modules
		}
		for _, imp := range p.Imports {
			for _, ts := range testSupport {
				if imp == mod+"/"+ts {
					t.Errorf("%s imports test-support package %s outside tests", path, imp)
				}
			}
			for _, only := range []string{"github.com/prometheus/"} {
				if strings.HasPrefix(imp, only) && path != mod+"/internal/telemetry" {
					t.Errorf("%s imports %s: only internal/telemetry may", path, imp)
				}
			}
			// Database drivers stay behind store.Store: SQLite in
			// store/sqlstore, PostgreSQL in store/pgstore and the
			// test-support package that makes throwaway databases.
			if strings.HasPrefix(imp, "modernc.org/sqlite") && path != mod+"/store/sqlstore" {
				t.Errorf("%s imports %s: only store/sqlstore may", path, imp)
			}
			if strings.HasPrefix(imp, "github.com/jackc/pgx") && path != mod+"/store/pgstore" && path != mod+"/internal/pgtest" {
				t.Errorf("%s imports %s: only store/pgstore (and the test-support internal/pgtest) may", path, imp)
			}
			for _, testOnly := range []string{"github.com/chromedp/", "github.com/flynn/noise", "go.uber.org/goleak", "pgregory.net/rapid", "github.com/google/go-cmp"} {
				if strings.HasPrefix(imp, testOnly) {
					t.Errorf("%s imports test-only module %s", path, imp)
				}
			}
		}
	}
}
