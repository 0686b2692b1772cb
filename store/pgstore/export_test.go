package pgstore

import "time"

// SetDefaultStatementTimeout sets the statement_timeout given to new pools
// and returns a function restoring the previous one.
func SetDefaultStatementTimeout(d time.Duration) (restore func()) {
	old := defaultStatementTimeout
	defaultStatementTimeout = d
	return func() { defaultStatementTimeout = old }
}
