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

// CutBatchCounts returns the frames cut through in a batch after its
// first, and the batches of several frames whose destination did not take
// them in full.
func CutBatchCounts() (joined, partial uint64) { return cutJoined.Load(), cutPartial.Load() }
