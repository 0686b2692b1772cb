package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ockamhub/ockamhub/provision"
	"github.com/ockamhub/ockamhub/store"
)

// pageData is what every page template gets.
type pageData struct {
	Title   string
	Account *store.Account
	Refresh int    // seconds; 0 means no automatic refresh
	Error   string // shown above the content
	Status  int    // for the error page

	// Sign-in page.
	GitHub, Local bool
	Username      string

	// Dashboard and node page.
	Nodes     []nodeView
	Node      *nodeView
	Limit     int
	CanCreate bool
	NodeName  string

	// Settings.
	Tokens   []store.Token
	NewToken string

	// Node page: a forwarder token just made, shown once.
	NewForwarderName, NewForwarderToken string
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"join": strings.Join,
}

func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"signin", "dashboard", "node", "settings", "error"} {
		pages[name] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	return pages
}

// render executes page into a buffer first, so a template error becomes a
// clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, d *pageData) {
	if d.Account == nil {
		if a, ok := r.Context().Value(ctxKey{}).(store.Account); ok {
			d.Account = &a
		}
	}
	d.GitHub, d.Local = h.cfg.GitHub != nil, h.cfg.LocalSignIn
	var buf bytes.Buffer
	if err := h.pages[page].Execute(&buf, d); err != nil {
		h.log.Error("rendering a page", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d := &pageData{Title: http.StatusText(status), Status: status, Error: msg}
	if a, ok := h.sessionAccount(w, r); ok {
		d.Account = &a
	}
	h.render(w, r, status, "error", d)
}

// nodeView is a node with what its pages show.
type nodeView struct {
	provision.Node
	AllowText   string // the allow-list, one network a line
	Route       string // to its echo service
	SendCommand string
	Forwarder   string // command to register a forwarder
	GoProgram   string
	RustProgram string
}

func newNodeView(n provision.Node) nodeView {
	addr := n.Address()
	allow := make([]string, len(n.Allow))
	for i, p := range n.Allow {
		allow[i] = p.String()
	}
	v := nodeView{
		Node:        n,
		AllowText:   strings.Join(allow, "\n"),
		Route:       "1#" + addr + " => echo_service",
		SendCommand: fmt.Sprintf(`ockamhub send --route "1#%s => echo_service" hello`, addr),
		Forwarder:   "ockamhub forwarder --hub " + addr,
	}
	v.GoProgram = goProgram(n.Name, addr)
	v.RustProgram = rustProgram(n.Hostname, addr)
	return v
}

func (h *Handler) dashboardData(r *http.Request) (*pageData, error) {
	a := accountOf(r)
	ns, err := h.cfg.Provisioner.Nodes(r.Context(), a.ID)
	if err != nil {
		return nil, err
	}
	d := &pageData{Title: "Your hub nodes", Limit: h.cfg.Provisioner.Limit()}
	for _, n := range ns {
		d.Nodes = append(d.Nodes, newNodeView(n))
	}
	d.CanCreate = d.Limit == 0 || len(ns) < d.Limit
	if len(ns) > 0 {
		d.Refresh = 5
	}
	return d, nil
}

func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request) {
	d, err := h.dashboardData(r)
	if err != nil {
		status, msg := h.userError(r, err)
		h.errorPage(w, r, status, msg)
		return
	}
	h.render(w, r, http.StatusOK, "dashboard", d)
}

func (h *Handler) createNode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := strings.TrimSpace(r.PostFormValue("name"))
	n, err := h.cfg.Provisioner.Create(r.Context(), accountOf(r).ID, name)
	if err != nil {
		status, msg := h.userError(r, err)
		d, derr := h.dashboardData(r)
		if derr != nil {
			h.errorPage(w, r, status, msg)
			return
		}
		d.Error, d.NodeName, d.Refresh = msg, name, 0
		h.render(w, r, status, "dashboard", d)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/nodes/%d", n.ID), http.StatusSeeOther)
}

// node returns the signed-in account's node named by the path, or writes
// a 404 page.
func (h *Handler) node(w http.ResponseWriter, r *http.Request) (provision.Node, bool) {
	id, ok := pathID(r)
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "No such node.")
		return provision.Node{}, false
	}
	n, err := h.cfg.Provisioner.Node(r.Context(), accountOf(r).ID, id)
	if err != nil {
		status, msg := h.userError(r, err)
		h.errorPage(w, r, status, msg)
		return provision.Node{}, false
	}
	return n, true
}

func (h *Handler) nodePage(w http.ResponseWriter, r *http.Request) {
	n, ok := h.node(w, r)
	if !ok {
		return
	}
	h.renderNode(w, r, http.StatusOK, n, nil)
}

func (h *Handler) renderNode(w http.ResponseWriter, r *http.Request, status int, n provision.Node, d *pageData) {
	v := newNodeView(n)
	if d == nil {
		d = &pageData{}
	}
	d.Title, d.Node = n.Name, &v
	if n.Status == store.StatusStarting && d.Error == "" && d.NewForwarderToken == "" {
		d.Refresh = 2
	}
	h.render(w, r, status, "node", d)
}

// nodeChange runs change on the page's node and shows the node page with
// the outcome (and d's extras).
func (h *Handler) nodeChange(w http.ResponseWriter, r *http.Request, change func(id int64) (provision.Node, error), d *pageData) {
	n, ok := h.node(w, r)
	if !ok {
		return
	}
	got, err := change(n.ID)
	if err != nil {
		status, msg := h.userError(r, err)
		if d == nil {
			d = &pageData{}
		}
		d.Error, d.NewForwarderToken = msg, ""
		h.renderNode(w, r, status, n, d)
		return
	}
	if d == nil {
		http.Redirect(w, r, fmt.Sprintf("/nodes/%d", n.ID), http.StatusSeeOther)
		return
	}
	h.renderNode(w, r, http.StatusOK, got, d)
}

func (h *Handler) setAllow(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	text := r.PostFormValue("allow")
	h.nodeChange(w, r, func(id int64) (provision.Node, error) {
		allow, err := parseAllow(strings.FieldsFunc(text, func(c rune) bool { return c == '\n' || c == ',' || c == ' ' || c == '\r' || c == '\t' }))
		if err != nil {
			return provision.Node{}, err
		}
		return h.cfg.Provisioner.SetAllow(r.Context(), accountOf(r).ID, id, allow)
	}, nil)
}

func (h *Handler) setForwarding(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	on := r.PostFormValue("named_forwarding") == "on"
	h.nodeChange(w, r, func(id int64) (provision.Node, error) {
		return h.cfg.Provisioner.SetNamedForwarding(r.Context(), accountOf(r).ID, id, on)
	}, nil)
}

func (h *Handler) createForwarderToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := strings.TrimSpace(r.PostFormValue("name"))
	token := newSecret("ohf_")
	// Shown once, in this response only: the store keeps its hash.
	h.nodeChange(w, r, func(id int64) (provision.Node, error) {
		return h.cfg.Provisioner.SetForwarderToken(r.Context(), accountOf(r).ID, id, name, token)
	}, &pageData{NewForwarderName: name, NewForwarderToken: token})
}

func (h *Handler) deleteForwarderToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	h.nodeChange(w, r, func(id int64) (provision.Node, error) {
		return h.cfg.Provisioner.DeleteForwarderToken(r.Context(), accountOf(r).ID, id, name)
	}, nil)
}

func (h *Handler) nodeProgram(w http.ResponseWriter, r *http.Request) {
	n, ok := h.node(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="main.go"`)
	fmt.Fprint(w, goProgram(n.Name, n.Address()))
}

func (h *Handler) deleteNode(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "No such node.")
		return
	}
	if err := h.cfg.Provisioner.Delete(r.Context(), accountOf(r).ID, id); err != nil {
		status, msg := h.userError(r, err)
		h.errorPage(w, r, status, msg)
		return
	}
	http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
}

func (h *Handler) settingsData(r *http.Request) (*pageData, error) {
	ts, err := h.cfg.Store.Tokens(r.Context(), accountOf(r).ID)
	if err != nil {
		return nil, err
	}
	return &pageData{Title: "Settings", Tokens: ts}, nil
}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request) {
	d, err := h.settingsData(r)
	if err != nil {
		status, msg := h.userError(r, err)
		h.errorPage(w, r, status, msg)
		return
	}
	h.render(w, r, http.StatusOK, "settings", d)
}

// maxTokenName bounds a token's label.
const maxTokenName = 64

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "token"
	}
	if len(name) > maxTokenName {
		d, err := h.settingsData(r)
		if err != nil {
			status, msg := h.userError(r, err)
			h.errorPage(w, r, status, msg)
			return
		}
		d.Error = fmt.Sprintf("A token's name has at most %d characters.", maxTokenName)
		h.render(w, r, http.StatusBadRequest, "settings", d)
		return
	}
	// The store checks the quota and inserts atomically, so concurrent
	// requests, on this instance or another sharing the database, cannot
	// pass the check together.
	secret := newSecret("ohp_")
	lim := h.cfg.MaxTokensPerAccount
	_, err := h.cfg.Store.CreateToken(r.Context(), store.Token{AccountID: accountOf(r).ID, Name: name, Hash: store.HashSecret(secret)}, lim)
	if errors.Is(err, store.ErrTokenLimit) {
		d, err := h.settingsData(r)
		if err != nil {
			status, msg := h.userError(r, err)
			h.errorPage(w, r, status, msg)
			return
		}
		d.Error = fmt.Sprintf("You have %d API tokens, the most allowed: delete one to create another.", lim)
		h.render(w, r, http.StatusTooManyRequests, "settings", d)
		return
	}
	var d *pageData
	if err == nil {
		d, err = h.settingsData(r)
	}
	if err != nil {
		status, msg := h.userError(r, err)
		h.errorPage(w, r, status, msg)
		return
	}
	// Shown once, in this response only: the store keeps its hash.
	d.NewToken = secret
	h.render(w, r, http.StatusOK, "settings", d)
}

func (h *Handler) deleteToken(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(r)
	if !ok {
		h.errorPage(w, r, http.StatusNotFound, "No such token.")
		return
	}
	if err := h.cfg.Store.DeleteToken(r.Context(), accountOf(r).ID, id); err != nil {
		status, msg := h.userError(r, err)
		if status == http.StatusNotFound {
			msg = "No such token."
		}
		h.errorPage(w, r, status, msg)
		return
	}
	http.Redirect(w, r, "/settings", http.StatusSeeOther)
}
