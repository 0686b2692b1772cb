package web

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"text/template"
)

// goProgramTemplate is a complete Go program that sends "Hello Ockam!" to
// a node's echo_service with this module's library and prints the reply.
// A test builds it for a live node and runs it.
var goProgramTemplate = template.Must(template.New("go").Parse(`// Command hello-ockam sends "Hello Ockam!" to the echo_service of your
// Ockam Hub node {{.Name}} at {{.Addr}} and prints the reply.
//
//	go mod init hello-ockam
//	go get github.com/ockamhub/ockamhub@latest
//	go run .
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ockamhub/ockamhub/node"
	"github.com/ockamhub/ockamhub/routing"
	"github.com/ockamhub/ockamhub/transport/tcp"
)

// hub is the address of your hub node.
const hub = {{printf "%q" .Addr}}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Start a node, with the TCP transport.
	n := node.New(node.Config{})
	defer n.Close()
	tr, err := tcp.New(n, tcp.Config{})
	if err != nil {
		return err
	}
	defer tr.Close()

	// Connect to your hub node.
	hubAddr, err := tr.Connect(ctx, hub)
	if err != nil {
		return err
	}

	// Send a message to the echo_service worker on your hub node.
	route := routing.Route{hubAddr, routing.LocalAddress("echo_service")}
	if err := n.Send(ctx, route, "Hello Ockam!"); err != nil {
		return err
	}

	// Wait to receive the echo and print it.
	m, err := n.Receive(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the reply from %s: %w", route, err)
	}
	reply, err := node.Body[string](m)
	if err != nil {
		return err
	}
	fmt.Println("App Received:", reply) // should print "Hello Ockam!"
	return nil
}
`))

// rustProgramTemplate is the 2021 Ockam Hub snippet (get_started example
// 10, ockam 0.8) with the node's address filled in.
var rustProgramTemplate = template.Must(template.New("rust").Parse(`// examples/hub.rs, with ockam = "0.8.0" and ockam_transport_tcp = "0.5.1"
use ockam::{Context, Result, Route};
use ockam_transport_tcp::{TcpTransport, TCP};

#[ockam::node]
async fn main(mut ctx: Context) -> Result<()> {
    let hub = "{{.Addr}}";{{if .NotIP}}
    // ockam 0.8 connects to IP addresses only: if this does not work, put
    // the IP address that {{.Host}} resolves to in place of the name.{{end}}

    // Initialize the TCP Transport.
    let tcp = TcpTransport::create(&ctx).await?;

    // Create a TCP connection to your hub node.
    tcp.connect(hub).await?;

    // Send a message to the echo_service worker on your hub node.
    ctx.send(
        Route::new().append_t(TCP, hub).append("echo_service"),
        "Hello Ockam!".to_string(),
    )
    .await?;

    // Wait to receive the echo and print it.
    let msg = ctx.receive::<String>().await?;
    println!("App Received: {}", msg); // should print "Hello Ockam!"

    // Stop the node.
    ctx.stop().await
}
`))

func goProgram(name, addr string) string {
	var b bytes.Buffer
	goProgramTemplate.Execute(&b, struct{ Name, Addr string }{name, addr})
	return b.String()
}

func rustProgram(host, addr string) string {
	var b bytes.Buffer
	notIP := net.ParseIP(strings.Trim(host, "[]")) == nil
	rustProgramTemplate.Execute(&b, struct {
		Host, Addr string
		NotIP      bool
	}{host, addr, notIP})
	return b.String()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
