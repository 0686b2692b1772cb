//go:build linux

package tcp

// PipesInUse returns the pipes taken from the pool and not given back.
func PipesInUse() int {
	pipes.mu.Lock()
	defer pipes.mu.Unlock()
	return pipes.open - len(pipes.free)
}

// MaxIdlePipes is maxIdlePipes, for tests.
const MaxIdlePipes = maxIdlePipes
