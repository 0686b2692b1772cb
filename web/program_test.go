package web_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestGoProgramBuildsAndRuns takes the Go program from a node's
// confirmation page, builds it in a module of its own against this
// repository, vets it, and runs it against the node.
func TestGoProgramBuildsAndRuns(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("OCKAMHUB_REQUIRE_ALL") == "1" {
			t.Fatal("the go command is not on PATH")
		}
		t.Skip("the go command is not on PATH")
	}
	s := newServer(t, options{})
	c := s.client(t)
	s.signIn(t, c, "alice")
	n := decode[apiNode](t, s.apiCreate(t, c, "demo"))
	page := do(t, c, "GET", s.URL+"/nodes/"+strconv.FormatInt(n.ID, 10), nil)
	program := element(t, page.body, "go-program")
	if dl := do(t, c, "GET", s.URL+"/nodes/"+strconv.FormatInt(n.ID, 10)+"/main.go", nil); dl.body != program {
		t.Fatalf("main.go download differs from the page's program:\n%s", dl.body)
	}

	root := repoRoot(t)
	dir := t.TempDir()
	gomod := "module hello-ockam\n\ngo 1.26.0\n\nrequire github.com/ockamhub/ockamhub v0.0.0\n\nreplace github.com/ockamhub/ockamhub => " + root + "\n"
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": sum, "main.go": []byte(program)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s\nprogram:\n%s", strings.Join(args, " "), err, out, program)
		}
		return string(out)
	}
	run(goTool, "vet", ".")
	bin := filepath.Join(dir, "hello-ockam")
	run(goTool, "build", "-o", bin, ".")
	if out := run(bin); strings.TrimSpace(out) != "App Received: Hello Ockam!" {
		t.Fatalf("program printed %q, want App Received: Hello Ockam!", out)
	}
	// And it is gofmt-clean, as published code should be.
	gofmt := filepath.Join(filepath.Dir(goTool), "gofmt")
	if out := run(gofmt, "-l", "main.go"); strings.TrimSpace(out) != "" {
		t.Errorf("the program is not gofmt-formatted")
	}
}
