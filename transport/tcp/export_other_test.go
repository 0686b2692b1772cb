//go:build !linux

package tcp

// PipesInUse returns 0: there are no pipes off Linux.
func PipesInUse() int { return 0 }

// MaxIdlePipes is 0 off Linux.
const MaxIdlePipes = 0
