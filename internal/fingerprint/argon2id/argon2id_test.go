package argon2id

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
)

// TestMatchesUpstream: every output equals golang.org/x/crypto/argon2.IDKey with one lane,
// across the cases where the reduced copy could go wrong: the fingerprint's pinned parameters,
// memory that upstream rounds (below the minimum, not a multiple of four), one and several
// passes, empty and long inputs, and keys shorter than, equal to and longer than one BLAKE2b
// output (64 bytes), where blake2bHash changes path.
func TestMatchesUpstream(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789abcdef"), 100)
	cases := []struct {
		password, salt     []byte
		time, memory, size uint32
	}{
		{[]byte("correct horse battery staple"), []byte("0123456789abcdef0123456789abcdef"), 4, 19 * 1024, 16},
		{[]byte("password"), []byte("somesalt"), 1, 8, 32},
		{[]byte("password"), []byte("somesalt"), 2, 1, 32},
		{[]byte("password"), []byte("somesalt"), 3, 37, 64},
		{[]byte("password"), []byte("somesalt"), 1, 64, 65},
		{[]byte("password"), []byte("somesalt"), 2, 256, 4},
		{[]byte("password"), []byte("somesalt"), 2, 1024, 1000},
		{nil, nil, 1, 16, 16},
		{long, long, 3, 512, 16},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("t=%d,m=%d,len=%d", c.time, c.memory, c.size), func(t *testing.T) {
			want := argon2.IDKey(c.password, c.salt, c.time, c.memory, 1, c.size)
			if got := Key(c.password, c.salt, c.time, c.memory, c.size); !bytes.Equal(got, want) {
				t.Errorf("Key = %x, want %x (x/crypto/argon2.IDKey)", got, want)
			}
		})
	}
}

// BenchmarkKey measures the fingerprint's parameters, to compare with BenchmarkUpstream.
func BenchmarkKey(b *testing.B) {
	for b.Loop() {
		Key([]byte("password"), []byte("somesalt"), 4, 19*1024, 16)
	}
}

func BenchmarkUpstream(b *testing.B) {
	for b.Loop() {
		argon2.IDKey([]byte("password"), []byte("somesalt"), 4, 19*1024, 1, 16)
	}
}
