// Copyright 2017 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Package argon2id is argon2id with one lane, computed entirely in the calling goroutine.
//
// It is a reduced copy of golang.org/x/crypto/argon2 (v0.59.0, BSD licence: see LICENSE),
// whose output it reproduces byte for byte (argon2id_test.go compares them). It exists because
// upstream runs every segment of the memory in a goroutine of its own, even with one lane, so
// the work lands on whichever threads the scheduler picks. The fingerprint runs the whole
// evaluation on one OS thread whose priority it has lowered; that needs a computation that
// never leaves the goroutine. What was cut: argon2i and argon2d, more than one lane, the
// secret and associated data, and the loong64 assembly (loong64 takes the generic code). The
// amd64 assembly is upstream's, unchanged, so it is as fast as upstream.
package argon2id

import (
	"encoding/binary"

	"golang.org/x/crypto/blake2b"
)

// version is the Argon2 version implemented: 1.3.
const version = 0x13

// mode is argon2id's type in the initial hash.
const mode = 2

const (
	blockLength = 128
	syncPoints  = 4
	// threads is the parallelism: one lane.
	threads = 1
)

type block [blockLength]uint64

// Key derives a key of keyLen bytes from password and salt with argon2id: time passes over
// memory KiB, one lane. It equals golang.org/x/crypto/argon2.IDKey(password, salt, time,
// memory, 1, keyLen), and runs in the calling goroutine without starting any other.
func Key(password, salt []byte, time, memory, keyLen uint32) []byte {
	if time < 1 {
		panic("argon2id: number of rounds too small")
	}
	h0 := initHash(password, salt, time, memory, keyLen)

	memory = memory / (syncPoints * threads) * (syncPoints * threads)
	if memory < 2*syncPoints*threads {
		memory = 2 * syncPoints * threads
	}
	B := initBlocks(&h0, memory)
	processBlocks(B, time, memory)
	return extractKey(B, memory, keyLen)
}

func initHash(password, salt []byte, time, memory, keyLen uint32) [blake2b.Size + 8]byte {
	var (
		h0     [blake2b.Size + 8]byte
		params [24]byte
		tmp    [4]byte
	)

	b2, _ := blake2b.New512(nil)
	binary.LittleEndian.PutUint32(params[0:4], threads)
	binary.LittleEndian.PutUint32(params[4:8], keyLen)
	binary.LittleEndian.PutUint32(params[8:12], memory)
	binary.LittleEndian.PutUint32(params[12:16], time)
	binary.LittleEndian.PutUint32(params[16:20], version)
	binary.LittleEndian.PutUint32(params[20:24], mode)
	b2.Write(params[:])
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(password)))
	b2.Write(tmp[:])
	b2.Write(password)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(salt)))
	b2.Write(tmp[:])
	b2.Write(salt)
	// No secret and no associated data: each is written as its length, zero.
	binary.LittleEndian.PutUint32(tmp[:], 0)
	b2.Write(tmp[:])
	b2.Write(tmp[:])
	b2.Sum(h0[:0])
	return h0
}

func initBlocks(h0 *[blake2b.Size + 8]byte, memory uint32) []block {
	var block0 [1024]byte
	B := make([]block, memory)
	// The first two blocks of the lane: h0 is followed by the block's number, then the lane's,
	// which is 0 and already in place.
	binary.LittleEndian.PutUint32(h0[blake2b.Size:], 0)
	blake2bHash(block0[:], h0[:])
	for i := range B[0] {
		B[0][i] = binary.LittleEndian.Uint64(block0[i*8:])
	}

	binary.LittleEndian.PutUint32(h0[blake2b.Size:], 1)
	blake2bHash(block0[:], h0[:])
	for i := range B[1] {
		B[1][i] = binary.LittleEndian.Uint64(block0[i*8:])
	}
	return B
}

// processBlocks fills the memory, segment after segment, in the calling goroutine: with one
// lane there is nothing to run in parallel, which is what upstream's goroutine per segment
// would do.
func processBlocks(B []block, time, memory uint32) {
	for n := uint32(0); n < time; n++ {
		for slice := uint32(0); slice < syncPoints; slice++ {
			processSegment(B, time, memory, n, slice, 0)
		}
	}
}

func processSegment(B []block, time, memory, n, slice, lane uint32) {
	lanes := memory / threads
	segments := lanes / syncPoints
	// The first half of the first pass is argon2i (data-independent addressing), the rest
	// argon2d.
	independent := n == 0 && slice < syncPoints/2

	var addresses, in, zero block
	if independent {
		in[0] = uint64(n)
		in[1] = uint64(lane)
		in[2] = uint64(slice)
		in[3] = uint64(memory)
		in[4] = uint64(time)
		in[5] = uint64(mode)
	}

	index := uint32(0)
	if n == 0 && slice == 0 {
		index = 2 // we have already generated the first two blocks
		in[6]++
		processBlock(&addresses, &in, &zero)
		processBlock(&addresses, &addresses, &zero)
	}

	offset := lane*lanes + slice*segments + index
	var random uint64
	for index < segments {
		prev := offset - 1
		if index == 0 && slice == 0 {
			prev += lanes // last block in lane
		}
		if independent {
			if index%blockLength == 0 {
				in[6]++
				processBlock(&addresses, &in, &zero)
				processBlock(&addresses, &addresses, &zero)
			}
			random = addresses[index%blockLength]
		} else {
			random = B[prev][0]
		}
		newOffset := indexAlpha(random, lanes, segments, n, slice, lane, index)
		processBlockXOR(&B[offset], &B[prev], &B[newOffset])
		index, offset = index+1, offset+1
	}
}

func extractKey(B []block, memory, keyLen uint32) []byte {
	// With one lane, the final block is the last block of the memory: no lanes to XOR in.
	var block [1024]byte
	for i, v := range B[memory-1] {
		binary.LittleEndian.PutUint64(block[i*8:], v)
	}
	key := make([]byte, keyLen)
	blake2bHash(key, block[:])
	return key
}

func indexAlpha(rand uint64, lanes, segments, n, slice, lane, index uint32) uint32 {
	refLane := uint32(rand>>32) % threads
	if n == 0 && slice == 0 {
		refLane = lane
	}
	m, s := 3*segments, ((slice+1)%syncPoints)*segments
	if lane == refLane {
		m += index
	}
	if n == 0 {
		m, s = slice*segments, 0
		if slice == 0 || lane == refLane {
			m += index
		}
	}
	if index == 0 || lane == refLane {
		m--
	}
	return phi(rand, uint64(m), uint64(s), refLane, lanes)
}

func phi(rand, m, s uint64, lane, lanes uint32) uint32 {
	p := rand & 0xFFFFFFFF
	p = (p * p) >> 32
	p = (p * m) >> 32
	return lane*lanes + uint32((s+m-(p+1))%uint64(lanes))
}
