// Package crc32c is plxfs's one CRC-32C (Castagnoli) table, the checksum GCS keeps for every
// object, and the arithmetic that combines the checksums of two pieces into the checksum of
// their concatenation (how the checksum of an object composed from parts is known from the
// parts' checksums, without reading them again).
package crc32c

import "hash/crc32"

// Table is the CRC-32C table. Every checksum plxfs computes or checks uses it.
var Table = crc32.MakeTable(crc32.Castagnoli)

// poly is the Castagnoli polynomial in reflected bit order (bit 31 is x^0).
const poly = 0x82f63b78

// xPow2 holds x^(2^k) mod P for k = 0..63, in reflected order.
var xPow2 = func() (t [64]uint32) {
	t[0] = 1 << 30 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = gfMul(t[k-1], t[k-1])
	}
	return t
}()

// gfMul multiplies a and b as polynomials over GF(2) modulo the CRC polynomial, both in
// reflected order.
func gfMul(a, b uint32) uint32 {
	var p uint32
	for bit := uint32(1) << 31; bit != 0; bit >>= 1 {
		if a&bit != 0 {
			p ^= b
		}
		// b *= x (a right shift in reflected order), reduced mod P.
		if b&1 != 0 {
			b = b>>1 ^ poly
		} else {
			b >>= 1
		}
	}
	return p
}

// Combine returns the CRC-32C of A||B given crcA = CRC(A), crcB = CRC(B) and lenB = len(B),
// without reading A or B. Appending lenB bytes multiplies A's remainder by x^(8*lenB); the
// pre- and post-conditioning of the standard CRC cancel out in the XOR, so the final values
// combine directly.
func Combine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA
	}
	shift := uint32(1) << 31 // x^0
	n := uint64(lenB)
	for k := 3; n != 0; k, n = k+1, n>>1 { // 8*lenB = lenB << 3, so bit i of lenB is x^(2^(i+3))
		if n&1 != 0 {
			shift = gfMul(xPow2[k], shift)
		}
	}
	return gfMul(shift, crcA) ^ crcB
}
