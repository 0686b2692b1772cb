package store_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ockamhub/ockamhub/store"
)

func TestCheckNodeName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"demo", true},
		{"my-node-2", true},
		{"0", true},
		{strings.Repeat("a", 32), true},
		{"", false},
		{strings.Repeat("a", 33), false},
		{"-demo", false},
		{"demo-", false},
		{"-", false},
		{"Demo", false},
		{"de mo", false},
		{"de_mo", false},
		{"de.mo", false},
		{"dé", false},
		{"demo\n", false},
	} {
		err := store.CheckNodeName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckNodeName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil {
			ne, isNameErr := errors.AsType[*store.NameError](err)
			if !isNameErr || !errors.Is(err, store.ErrInvalidName) || ne.Name != tt.name || ne.Rule != store.NodeNameRule {
				t.Errorf("CheckNodeName(%q): got %#v, want a *NameError wrapping ErrInvalidName", tt.name, err)
			}
		}
	}
}

func TestCheckUsername(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"Alice-2", true},
		{strings.Repeat("a", 39), true},
		{"", false},
		{strings.Repeat("a", 40), false},
		{"-alice", false},
		{"al ice", false},
		{"<script>", false},
	} {
		if err := store.CheckUsername(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckUsername(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestHashSecret(t *testing.T) {
	if store.HashSecret("a") == store.HashSecret("b") || store.HashSecret("a") != store.HashSecret("a") {
		t.Fatal("HashSecret is not a function of its input")
	}
}
