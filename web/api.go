package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
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
	return apiNode{
		ID: n.ID, Name: n.Name, Hostname: n.Hostname, Port: n.Port, Address: n.Address(),
		Route:  "1#" + n.Address() + " => echo_service",
		Status: n.Status, Reason: n.Reason, Services: svcs, CreatedAt: n.CreatedAt, Stats: apiStats(n.Stats),
	}
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
		Name string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSONError(w, http.StatusBadRequest, `the body must be a JSON object {"name": "..."}: `+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeJSONError(w, http.StatusBadRequest, `the body must be a single JSON object {"name": "..."}`)
		return
	}
	n, err := h.cfg.Provisioner.Create(r.Context(), accountOf(r).ID, req.Name)
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
