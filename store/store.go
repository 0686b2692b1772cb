package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"time"
)

// Providers of accounts.
const (
	ProviderGitHub = "github" // ProviderID is the numeric GitHub user id
	ProviderLocal  = "local"  // ProviderID is the user name (development sign-in)
)

// Account is a person who signed in. The zero value is not a stored account.
type Account struct {
	ID         int64
	Provider   string // ProviderGitHub or ProviderLocal
	ProviderID string // the provider's stable id for the person
	Login      string // the name shown; for GitHub, the login at the last sign-in
	CreatedAt  time.Time
}

// Hash is the SHA-256 of a session or token secret; only hashes are stored.
type Hash [sha256.Size]byte

// HashSecret returns the hash under which a secret is stored.
func HashSecret(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// Session is a signed-in browser: the hash of its cookie's random value.
type Session struct {
	Hash      Hash
	AccountID int64
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Token is a personal API token, used as "Authorization: Bearer TOKEN".
type Token struct {
	ID        int64
	AccountID int64
	Name      string // the owner's label for it
	Hash      Hash
	CreatedAt time.Time
}

// Status is the state of a hub node.
type Status string

// Node states: a node is created (or restored at startup) as StatusStarting
// and becomes StatusRunning once it accepts connections, or StatusFailed
// with a reason.
const (
	StatusStarting Status = "starting"
	StatusRunning  Status = "running"
	StatusFailed   Status = "failed"
)

// Node is a user's hub node: a hub listening on Port.
type Node struct {
	ID        int64
	AccountID int64
	Name      string // unique across accounts; see CheckNodeName
	Port      int    // unique across nodes
	Status    Status
	Reason    string // why the node failed; empty otherwise
	CreatedAt time.Time
	// Allow lists the source networks the node admits; empty admits
	// everyone (the 2021 behaviour). Set with SetNodeAllow.
	Allow []netip.Prefix
	// NamedForwarding is whether the node runs static_forwarding_service
	// (forward_to_NAME). Set with SetNodeNamedForwarding; the names'
	// tokens are kept apart (NodeForwarderTokens).
	NamedForwarding bool
}

// NodeStats are a running node's counters.
type NodeStats struct {
	Conns                int64  // open connections
	Accepted             uint64 // connections ever accepted
	Forwarders           int    // live forwarding addresses
	ForwardersRegistered uint64 // forwarders ever registered
	MessagesIn           uint64 // messages received from connections
	MessagesOut          uint64 // messages written to connections
	BytesIn              uint64
	BytesOut             uint64
	Dropped              uint64 // messages dropped: unknown worker, no connection, full queue, too large
}

// Store persists accounts, sessions, tokens and nodes. Implementations are
// safe for concurrent use. Methods that look a record up for an account
// return ErrNotFound when it belongs to another account.
type Store interface {
	// UpsertAccount returns the account of (provider, providerID), creating
	// it if needed and updating its Login.
	UpsertAccount(ctx context.Context, provider, providerID, login string) (Account, error)
	// Account returns the account with id.
	Account(ctx context.Context, id int64) (Account, error)

	// CreateSession stores s.
	CreateSession(ctx context.Context, s Session) error
	// SessionAccount returns the account of the session with hash h if it
	// has not expired at now, and ErrNotFound otherwise.
	SessionAccount(ctx context.Context, h Hash, now time.Time) (Account, error)
	// DeleteSession deletes the session with hash h; it is not an error if
	// there is none.
	DeleteSession(ctx context.Context, h Hash) error
	// DeleteExpiredSessions deletes the sessions that expired before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) error

	// CreateToken stores t (its ID and CreatedAt are set by the store when
	// zero) and returns it, unless the account already has limit tokens
	// (ErrTokenLimit; limit <= 0 means none). The check and the insert are
	// atomic, across every process sharing the database.
	CreateToken(ctx context.Context, t Token, limit int) (Token, error)
	// TokenAccount returns the account of the token with hash h.
	TokenAccount(ctx context.Context, h Hash) (Account, error)
	// Tokens lists an account's tokens, oldest first.
	Tokens(ctx context.Context, accountID int64) ([]Token, error)
	// DeleteToken deletes an account's token.
	DeleteToken(ctx context.Context, accountID, id int64) error

	// CreateNode stores n unless the account already has limit nodes
	// (ErrNodeLimit; limit <= 0 means none), the name is taken
	// (ErrNameTaken) or the port is (ErrPortTaken); the checks and the
	// insert are atomic. It sets ID and, when zero, CreatedAt.
	CreateNode(ctx context.Context, n Node, limit int) (Node, error)
	// Node returns an account's node.
	Node(ctx context.Context, accountID, id int64) (Node, error)
	// Nodes lists an account's nodes, oldest first.
	Nodes(ctx context.Context, accountID int64) ([]Node, error)
	// AllNodes lists every node, oldest first.
	AllNodes(ctx context.Context) ([]Node, error)
	// SetNodeStatus records a node's status and the reason for it.
	SetNodeStatus(ctx context.Context, id int64, s Status, reason string) error
	// DeleteNode deletes an account's node.
	DeleteNode(ctx context.Context, accountID, id int64) error

	// SetNodeAllow replaces an account's node's allow-list (nil or empty:
	// open to everyone). Prefixes are stored masked (Prefix.Masked).
	SetNodeAllow(ctx context.Context, accountID, id int64, allow []netip.Prefix) error
	// SetNodeNamedForwarding turns an account's node's named forwarding
	// (static_forwarding_service) on or off; its tokens are kept.
	SetNodeNamedForwarding(ctx context.Context, accountID, id int64, enabled bool) error
	// SetNodeForwarderToken sets (or replaces) the hash of the token that
	// registrations of forwarder name on an account's node must carry.
	SetNodeForwarderToken(ctx context.Context, accountID, id int64, name string, h Hash) error
	// DeleteNodeForwarderToken removes the token of forwarder name on an
	// account's node; ErrNotFound if the node or the token does not exist.
	DeleteNodeForwarderToken(ctx context.Context, accountID, id int64, name string) error
	// NodeForwarderTokens returns the token hashes of a node's forwarder
	// names, by name (empty, not nil, when there are none). It takes the
	// node ID alone: the provisioner applies them to the running node.
	NodeForwarderTokens(ctx context.Context, id int64) (map[string]Hash, error)

	// TrimSessions ends the oldest of an account's sessions live at now
	// so that at most keep remain, and returns how many it ended.
	TrimSessions(ctx context.Context, accountID int64, keep int, now time.Time) (int, error)
}

// MaxNodeNameLen is the longest node name.
const MaxNodeNameLen = 32

// NodeNameRule says in words which node names CheckNodeName accepts.
const NodeNameRule = "1 to 32 characters: lowercase letters, digits and hyphens, not starting or ending with a hyphen"

// CheckNodeName reports whether name may name a node: 1 to 32 lowercase
// letters, digits and hyphens, not starting or ending with a hyphen, so that
// it is a DNS label. The error is a *NameError.
func CheckNodeName(name string) error {
	if !isLabel(name, MaxNodeNameLen, false) {
		return &NameError{What: "node name", Name: name, Rule: NodeNameRule}
	}
	return nil
}

// MaxForwarderNameLen is the longest named-forwarder name a node owner
// may give a token to.
const MaxForwarderNameLen = 64

// ForwarderNameRule says in words which names CheckForwarderName accepts.
const ForwarderNameRule = "1 to 64 characters: letters, digits, hyphens, underscores and dots"

// CheckForwarderName reports whether name may name a forwarder whose
// token an owner sets (forward_to_NAME). The error is a *NameError.
func CheckForwarderName(name string) error {
	ok := len(name) > 0 && len(name) <= MaxForwarderNameLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
	}
	if !ok {
		return &NameError{What: "forwarder name", Name: name, Rule: ForwarderNameRule}
	}
	return nil
}

// MaxUsernameLen is the longest user name for the development sign-in
// (GitHub's limit).
const MaxUsernameLen = 39

// UsernameRule says in words which user names CheckUsername accepts.
const UsernameRule = "1 to 39 characters: letters, digits and hyphens, not starting or ending with a hyphen"

// CheckUsername reports whether name may be used for a development
// sign-in: 1 to 39 letters, digits and hyphens, not starting or ending with
// a hyphen, like GitHub logins. The error is a *NameError.
func CheckUsername(name string) error {
	if !isLabel(name, MaxUsernameLen, true) {
		return &NameError{What: "user name", Name: name, Rule: UsernameRule}
	}
	return nil
}

// NameError is a name that breaks its rule. It wraps ErrInvalidName.
type NameError struct {
	What string // "node name" or "user name"
	Name string // as given
	Rule string // the rule, in words
}

func (e *NameError) Error() string {
	return fmt.Sprintf("store: invalid %s %q: use %s", e.What, e.Name, e.Rule)
}

// Unwrap returns ErrInvalidName.
func (e *NameError) Unwrap() error { return ErrInvalidName }

func isLabel(s string, maxLen int, upper bool) bool {
	if len(s) == 0 || len(s) > maxLen || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case upper && 'A' <= c && c <= 'Z':
		default:
			return false
		}
	}
	return true
}
