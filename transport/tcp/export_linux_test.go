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

// SetHeadChunkSize makes the head chunks mapped from now on n bytes long
// (the current one is retired) and returns what restores the size.
func SetHeadChunkSize(n int) (restore func()) {
	headChunks.mu.Lock()
	old := headChunkSize
	headChunkSize = n
	headChunks.mu.Unlock()
	return func() {
		headChunks.mu.Lock()
		headChunkSize = old
		headChunks.mu.Unlock()
	}
}

// HeadsLent returns the heads lent to pipes so far.
func HeadsLent() uint64 { return headsLent.Load() }

// HeadChunksMapped returns the head chunks mapped so far.
func HeadChunksMapped() uint64 { return headChunksMapped.Load() }
