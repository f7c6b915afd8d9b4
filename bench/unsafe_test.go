package bench

import "unsafe"

func unsafeBytes(mem []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), len(mem)*8)
}
