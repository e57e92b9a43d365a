package engine

// Every test of the package spools the new items past a few, so that the spool's disk path is
// the one under the crash, property and conformance tests.
func init() { insertsInMemory = 3 }
