package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
)

// apiNode is a node in the JSON API.
type apiNode struct {
	ID        int64        `json:"id"`
	Name      string       `json:"name"`
	Hostname  string       `json:"hostname"`
	Port      int          `json:"port"`
	Address   string       `json:"address"` // hostname:port
	Route     string       `json:"route"`   // to its echo_service
	Status    store.Status `json:"status"`
	Reason    string       `json:"reason,omitempty"`
	Services  []string     `json:"services"`
	CreatedAt time.Time    `json:"created_at"`
	Stats     apiStats     `json:"stats"`
	// Allow is the allow-list: the source networks admitted; empty = all.
	Allow []string `json:"allow"`
	// NamedForwarding is whether static_forwarding_service runs.
	NamedForwarding bool `json:"named_forwarding"`
	// ForwarderNames are the forwarder names that have a token.
	ForwarderNames []string `json:"forwarder_names"`
	// NextRetry is when a failed node is next tried.
	NextRetry *time.Time `json:"next_retry,omitempty"`
	// Instance is the cluster instance that runs the node (serve
	// --instance); absent outside a cluster.
	Instance string `json:"instance,omitempty"`
}

// apiStats are a node's counters in the JSON API.
type apiStats struct {
	Conns                int64  `json:"connections"`
	Accepted             uint64 `json:"connections_accepted"`
	Forwarders           int    `json:"forwarders"`
	ForwardersRegistered uint64 `json:"forwarders_registered"`
	MessagesIn           uint64 `json:"messages_in"`
	MessagesOut          uint64 `json:"messages_out"`
	BytesIn              uint64 `json:"bytes_in"`
	BytesOut             uint64 `json:"bytes_out"`
	Dropped              uint64 `json:"dropped"`
}

func toAPINode(n provision.Node) apiNode {
	svcs := n.Services
	if svcs == nil {
		svcs = []string{}
	}
	allow := make([]string, len(n.Allow))
	for i, p := range n.Allow {
		allow[i] = p.String()
	}
	names := n.ForwarderNames
	if names == nil {
		names = []string{}
	}
	a := apiNode{
		ID: n.ID, Name: n.Name, Hostname: n.Hostname, Port: n.Port, Address: n.Address(),
		Route:  "1#" + n.Address() + " => echo_service",
		Status: n.Status, Reason: n.Reason, Services: svcs, CreatedAt: n.CreatedAt, Stats: apiStats(n.Stats),
		Allow: allow, NamedForwarding: n.NamedForwarding, ForwarderNames: names, Instance: n.Instance,
	}
	if !n.NextRetry.IsZero() {
		t := n.NextRetry.UTC()
		a.NextRetry = &t
	}
	return a
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // routes contain "=>"; the content type is not HTML
	enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// api runs next for a request with a valid bearer token or session
// cookie, and answers 401 otherwise. A request that sends a token is
// judged by the token alone.
func (h *Handler) api(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var a store.Account
		ok := false
		if auth := r.Header.Get("Authorization"); auth != "" {
			scheme, tok, _ := strings.Cut(auth, " ")
			if strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) != "" {
				var err error
				a, err = h.cfg.Store.TokenAccount(r.Context(), store.HashSecret(strings.TrimSpace(tok)))
				if errors.Is(err, store.ErrUnavailable) {
					h.apiError(w, r, err)
					return
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					h.log.Error("looking up a token", "err", err)
				}
				ok = err == nil
			}
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				writeJSONError(w, http.StatusUnauthorized, "invalid API token: create one on the settings page")
				return
			}
		} else {
			var err error
			a, err = h.lookupSession(w, r)
			if errors.Is(err, store.ErrUnavailable) {
				h.apiError(w, r, err)
				return
			}
			ok = err == nil
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSONError(w, http.StatusUnauthorized, "not signed in: send Authorization: Bearer TOKEN, or the session cookie")
			return
		}
		next(w, r.WithContext(contextWithAccount(r, a)))
	}
}

func (h *Handler) apiError(w http.ResponseWriter, r *http.Request, err error) {
	if re, ok := errors.AsType[*provision.RateError](err); ok {
		w.Header().Set("Retry-After", retryAfter(re.RetryAfter))
	}
	status, msg := h.userError(r, err)
	writeJSONError(w, status, msg)
}

func (h *Handler) apiListNodes(w http.ResponseWriter, r *http.Request) {
	ns, err := h.cfg.Provisioner.Nodes(r.Context(), accountOf(r).ID)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	out := struct {
		Nodes []apiNode `json:"nodes"`
	}{Nodes: []apiNode{}}
	for _, n := range ns {
		out.Nodes = append(out.Nodes, toAPINode(n))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) apiCreateNode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name *string
	}
	if err := decodeExact(w, r, map[string]any{"name": &req.Name}); err != nil {
		writeJSONError(w, http.StatusBadRequest, `the body must be a JSON object {"name": "..."}: `+err.Error())
		return
	}
	if req.Name == nil {
		writeJSONError(w, http.StatusBadRequest, `the body must be a JSON object {"name": "..."}: "name" is missing`)
		return
	}
	n, err := h.cfg.Provisioner.Create(r.Context(), accountOf(r).ID, *req.Name)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/nodes/"+itoa(n.ID))
	writeJSON(w, http.StatusCreated, toAPINode(n))
}

func (h *Handler) apiGetNode(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "No such node.")
		return
	}
	n, err := h.cfg.Provisioner.Node(r.Context(), accountOf(r).ID, id)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPINode(n))
}

func (h *Handler) apiDeleteNode(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "No such node.")
		return
	}
	if err := h.cfg.Provisioner.Delete(r.Context(), accountOf(r).ID, id); err != nil {
		h.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// errJSON describes a body decodeExact refuses.
var errJSON = errors.New("web: bad JSON body")

// decodeExact decodes a request body that must be one JSON object whose
// keys are among fields, spelled exactly (encoding/json alone matches keys
// case-insensitively, so {"name":"x","NAME":"y"} would create y), each at
// most once. Each field's value is decoded into fields[key].
func decodeExact(w http.ResponseWriter, r *http.Request, fields map[string]any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("%w: not a JSON object", errJSON)
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", errJSON, err)
		}
		key, _ := t.(string)
		dst, ok := fields[key]
		if !ok {
			return fmt.Errorf("%w: unknown key %q (keys are case-sensitive)", errJSON, key)
		}
		if seen[key] {
			return fmt.Errorf("%w: key %q given twice", errJSON, key)
		}
		seen[key] = true
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("%w: %q: %v", errJSON, key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("%w: %v", errJSON, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: more after the object", errJSON)
	}
	return nil
}

// parseAllow parses an allow-list of CIDRs ("203.0.113.0/24") or single
// addresses (taken as /32 or /128).
func parseAllow(items []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(items))
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		p, err := netip.ParsePrefix(it)
		if err != nil {
			a, aerr := netip.ParseAddr(it)
			if aerr != nil {
				return nil, &provision.AllowError{Reason: fmt.Sprintf("%q is not a network (like 203.0.113.0/24) or an address", it)}
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// apiPatchNode changes a node's settings: {"allow": [...]} and/or
// {"named_forwarding": true}.
func (h *Handler) apiPatchNode(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "No such node.")
		return
	}
	var req struct {
		Allow *[]string
		Named *bool
	}
	if err := decodeExact(w, r, map[string]any{"allow": &req.Allow, "named_forwarding": &req.Named}); err != nil {
		writeJSONError(w, http.StatusBadRequest, `the body must be a JSON object {"allow": ["203.0.113.0/24"], "named_forwarding": false} (either key may be left out): `+err.Error())
		return
	}
	a := accountOf(r)
	n, err := h.cfg.Provisioner.Node(r.Context(), a.ID, id)
	if err == nil && req.Allow != nil {
		var allow []netip.Prefix
		if allow, err = parseAllow(*req.Allow); err == nil {
			n, err = h.cfg.Provisioner.SetAllow(r.Context(), a.ID, id, allow)
		}
	}
	if err == nil && req.Named != nil {
		n, err = h.cfg.Provisioner.SetNamedForwarding(r.Context(), a.ID, id, *req.Named)
	}
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPINode(n))
}

// apiCreateForwarderToken makes a new token for forwarder {"name": ...}
// of a node and returns it, once: the store keeps its hash.
func (h *Handler) apiCreateForwarderToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "No such node.")
		return
	}
	var name *string
	if err := decodeExact(w, r, map[string]any{"name": &name}); err != nil || name == nil {
		writeJSONError(w, http.StatusBadRequest, `the body must be a JSON object {"name": "FORWARDER-NAME"}`)
		return
	}
	token := newSecret("ohf_")
	n, err := h.cfg.Provisioner.SetForwarderToken(r.Context(), accountOf(r).ID, id, *name, token)
	if err != nil {
		h.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"name": *name, "token": token, "node": toAPINode(n)})
}

func (h *Handler) apiDeleteForwarderToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "No such node.")
		return
	}
	if _, err := h.cfg.Provisioner.DeleteForwarderToken(r.Context(), accountOf(r).ID, id, r.PathValue("name")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeJSONError(w, http.StatusNotFound, "No such node or forwarder token.")
			return
		}
		h.apiError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
