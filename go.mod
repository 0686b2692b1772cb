module github.com/ockamhub/ockamhub

go 1.26.0

require (
	github.com/flynn/noise v1.1.0
	go.uber.org/goleak v1.3.0
	golang.org/x/time v0.16.0
)

require (
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
