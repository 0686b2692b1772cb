// Package vectorfile reads the hex test-vector files kept under testdata/
// (copied from the project's shared vectors). It is test support: only
// _test.go files import it.
//
// Format: a line starting with "#" is a comment; a line starting with "## "
// names a segment, and the hex lines after it, up to the next "## " line,
// are its bytes; every other non-empty line holds hex byte pairs separated by
// spaces. A file without "## " lines holds one segment named "".
package vectorfile

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
)

// File is a parsed vector file: its segments in order.
type File struct {
	Names    []string
	Segments map[string][]byte
}

// Parse parses the text of a vector file.
func Parse(text string) (*File, error) {
	f := &File{Segments: map[string][]byte{}}
	name := ""
	started := false
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "## "):
			name = strings.TrimSpace(line[3:])
			started = false
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			b, err := hex.DecodeString(strings.ReplaceAll(line, " ", ""))
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			if !started {
				if _, dup := f.Segments[name]; !dup {
					f.Names = append(f.Names, name)
				}
				started = true
			}
			f.Segments[name] = append(f.Segments[name], b...)
		}
	}
	return f, nil
}

// Load reads and parses the vector file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Bytes returns the single (or first) segment of the file at path, or an
// error.
func Bytes(path string) ([]byte, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	if len(f.Names) == 0 {
		return nil, fmt.Errorf("%s: no bytes", path)
	}
	return f.Segments[f.Names[0]], nil
}

// Frames splits a stream of u16 big-endian length-prefixed frames into their
// bodies.
func Frames(stream []byte) ([][]byte, error) {
	var out [][]byte
	for len(stream) > 0 {
		if len(stream) < 2 {
			return nil, fmt.Errorf("truncated frame header")
		}
		n := int(stream[0])<<8 | int(stream[1])
		if len(stream) < 2+n {
			return nil, fmt.Errorf("truncated frame body")
		}
		out = append(out, stream[2:2+n])
		stream = stream[2+n:]
	}
	return out, nil
}
