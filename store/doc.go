// Package store holds the control plane's domain types (accounts, sign-in
// sessions, personal API tokens and hub nodes) and the Store interface that
// persists them. It imports only the standard library, so package web and
// package provision compile without a database driver; package sqlstore is
// the SQLite implementation and package storetest the conformance suite
// every implementation passes.
//
// Secrets never reach a Store: sessions and tokens are kept as the SHA-256
// of the random text handed to the user (see HashSecret), so a copy of the
// database does not let anyone sign in.
package store
