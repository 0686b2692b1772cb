package noise

// Key returns the AES-256 key of c, for the tests against vectors. It is
// test-only: no production code can read a transport key.
func (c *CipherState) Key() Key {
	return c.k
}
