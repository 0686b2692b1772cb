package bare_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// segment is one named run of bytes in a vector file (format:
// "## name" lines, then hex bytes; the vectors are copied into testdata/).
type segment struct {
	name string // "" for a file without "## " lines
	data []byte
}

// readVectors parses testdata/file: "#" lines are comments, a "## NAME" line
// starts a segment, every other non-empty line is space-separated hex pairs.
func readVectors(t testing.TB, file string) []segment {
	t.Helper()
	f, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var segs []segment
	sc := bufio.NewScanner(bytes.NewReader(f))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "":
		case strings.HasPrefix(s, "## "):
			segs = append(segs, segment{name: strings.TrimPrefix(s, "## ")})
		case strings.HasPrefix(s, "#"):
		default:
			b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
			if err != nil {
				t.Fatalf("%s:%d: %v", file, line, err)
			}
			if len(segs) == 0 {
				segs = append(segs, segment{})
			}
			segs[len(segs)-1].data = append(segs[len(segs)-1].data, b...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return segs
}

// vector returns the bytes of the segment called name in testdata/file.
func vector(t testing.TB, file, name string) []byte {
	t.Helper()
	for _, s := range readVectors(t, file) {
		if s.name == name {
			return s.data
		}
	}
	t.Fatalf("%s: no segment %q", file, name)
	return nil
}

// unhex decodes space-separated hex; tests use it for hand-written bytes.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("unhex(%q): %v", s, err)
	}
	return b
}
