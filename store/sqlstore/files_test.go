package sqlstore_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ockamhub/ockamhub/store"
	"github.com/ockamhub/ockamhub/store/sqlstore"
)

func mode(t *testing.T, name string) os.FileMode {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestWorldReadableFilesFixed reproduces finding 8: with --data already
// there, the directory stayed 755 and ockamhub.db, -wal and -shm 644.
func TestWorldReadableFilesFixed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755) // whatever the umask
	file := filepath.Join(dir, "ockamhub.db")
	// A database made by an older version, with wide modes.
	s := open(t, file)
	if _, err := s.UpsertAccount(t.Context(), store.ProviderLocal, "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	names := []string{file, file + "-wal", file + "-shm"}
	for _, name := range names {
		if err := os.WriteFile(name, nil, 0o644); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		if err := os.Chmod(name, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fixedDir, err := sqlstore.SecureDir(dir)
	if err != nil || !fixedDir {
		t.Fatalf("SecureDir: fixed %v, %v; want true", fixedDir, err)
	}
	fixed, err := sqlstore.SecureFiles(file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fixed, names) {
		t.Fatalf("SecureFiles fixed %v, want %v", fixed, names)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Fatalf("data directory mode %o, want 700", m)
	}
	for _, name := range names {
		if m := mode(t, name); m != 0o600 {
			t.Fatalf("%s mode %o, want 600", filepath.Base(name), m)
		}
	}
	// Nothing left to fix the second time.
	if again, _ := sqlstore.SecureFiles(file); len(again) != 0 {
		t.Fatalf("second SecureFiles fixed %v", again)
	}
	if again, _ := sqlstore.SecureDir(dir); again {
		t.Fatal("second SecureDir fixed the directory again")
	}
}

// TestNewFilesPrivate: a new database and the -wal and -shm files SQLite
// makes beside it are 0600 whatever the umask.
func TestNewFilesPrivate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ockamhub.db")
	s := open(t, file)
	if _, err := s.UpsertAccount(t.Context(), store.ProviderLocal, "alice", "alice"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{file, file + "-wal", file + "-shm"} {
		if m := mode(t, name); m != 0o600 {
			t.Fatalf("%s mode %o, want 600", filepath.Base(name), m)
		}
	}
}
