package web

import (
	"bytes"
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
	Route       string // to its echo service
	SendCommand string
	Forwarder   string // command to register a forwarder
	GoProgram   string
	RustProgram string
}

func newNodeView(n provision.Node) nodeView {
	addr := n.Address()
	v := nodeView{
		Node:        n,
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
	v := newNodeView(n)
	d := &pageData{Title: n.Name, Node: &v}
	if n.Status == store.StatusStarting {
		d.Refresh = 2
	}
	h.render(w, r, http.StatusOK, "node", d)
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
			h.errorPage(w, r, http.StatusInternalServerError, "Could not load your tokens.")
			return
		}
		d.Error = fmt.Sprintf("A token's name has at most %d characters.", maxTokenName)
		h.render(w, r, http.StatusBadRequest, "settings", d)
		return
	}
	secret := newSecret("ohp_")
	_, err := h.cfg.Store.CreateToken(r.Context(), store.Token{AccountID: accountOf(r).ID, Name: name, Hash: store.HashSecret(secret)})
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
