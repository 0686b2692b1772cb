//go:build !linux

package tcp

// cutState is unused off Linux.
type cutState struct{}

// cutThrough never cuts through off Linux: every frame takes the usual
// path.
func (rd *reader) cutThrough(int) (bool, []byte, error) { return false, nil, nil }

// spliceSink never splices off Linux: every frame takes the usual path.
func (rd *reader) spliceSink(int) (bool, []byte, error) { return false, nil, nil }

// pipe is unused off Linux.
type pipe struct{ n int }

func readPipe(*pipe, []byte) ([]byte, error) { return nil, nil }

func putPipe(*pipe) {}

func (rd *reader) dropCut() {}

func (rd *reader) parkCut() {}

func (rd *reader) peekAfterCut() int { return cutPeek }
