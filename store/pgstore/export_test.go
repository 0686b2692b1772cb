package pgstore

import "time"

// SetDefaultStatementTimeout sets the statement_timeout given to new pools
// and returns a function restoring the previous one.
func SetDefaultStatementTimeout(d time.Duration) (restore func()) {
	old := defaultStatementTimeout
	defaultStatementTimeout = d
	return func() { defaultStatementTimeout = old }
}

// SetClientTimeoutMargin sets how much longer than the statement timeout
// the client waits, and returns a function restoring the previous value.
func SetClientTimeoutMargin(d time.Duration) (restore func()) {
	old := clientTimeoutMargin
	clientTimeoutMargin = d
	return func() { clientTimeoutMargin = old }
}
