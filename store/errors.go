package store

import "errors"

// Errors returned by Store implementations, compared with errors.Is.
var (
	// ErrNotFound is returned for a record that does not exist, or that
	// belongs to another account: callers cannot tell the two apart.
	ErrNotFound = errors.New("store: not found")
	// ErrNameTaken is returned by CreateNode when a node of that name
	// exists (names are global: they become host names).
	ErrNameTaken = errors.New("store: node name taken")
	// ErrPortTaken is returned by CreateNode when another node has the port.
	ErrPortTaken = errors.New("store: port taken")
	// ErrNodeLimit is returned by CreateNode when the account already has
	// as many nodes as the limit allows.
	ErrNodeLimit = errors.New("store: node limit reached")
	// ErrTokenLimit is returned by CreateToken when the account already
	// has as many API tokens as the limit allows.
	ErrTokenLimit = errors.New("store: API token limit reached")
	// ErrInvalidName is wrapped by the *NameError of CheckNodeName and
	// CheckUsername.
	ErrInvalidName = errors.New("store: invalid name")
	// ErrUnavailable is wrapped by errors of a store that cannot reach its
	// database (a PostgreSQL server restarting or unreachable). The request
	// may succeed later; the web layer answers 503.
	ErrUnavailable = errors.New("store: database unavailable")
)
