//go:build race

package portal_test

const raceEnabled = true
