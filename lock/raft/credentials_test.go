package raft

import (
	"encoding/hex"
	"testing"
)

// TestKeyDerivationIsPinned: every member of a cluster must derive the same key, so the
// derivation (argon2id, its parameters, the salt) may change only with protocolVersion, which
// tells members of different releases apart. Changing it fails this test: bump the version then,
// and update the value.
func TestKeyDerivationIsPinned(t *testing.T) {
	const secret = "7c90baa41fc3ebb7192e8952806076df2c1a17993fe2ccd32f42e3da05ea9930"
	if protocolVersion != "schemagate raft transport v4" {
		t.Fatalf("protocol %q: update the pinned value below", protocolVersion)
	}
	// The reference implementation agrees: libargon2's argon2id_hash_raw(2, 19*1024, 1, secret,
	// "schemagate raft transport v4\x00app/3f9a1c", 32 bytes).
	const want = "c948729e248aa671def36c96387bd2cb020bcfca977814543d6c10970a1b8d0e"
	if got := hex.EncodeToString(deriveSeed([]byte(secret), "app/3f9a1c")); got != want {
		t.Errorf("seed %s, want %s", got, want)
	}
	// Each input counts.
	base := deriveSeed([]byte(secret), "app/3f9a1c")
	for name, other := range map[string][]byte{
		"another cluster": deriveSeed([]byte(secret), "app/3f9a1d"),
		"another secret":  deriveSeed([]byte(secret[:63]+"1"), "app/3f9a1c"),
	} {
		if hex.EncodeToString(other) == hex.EncodeToString(base) {
			t.Errorf("%s derives the same key", name)
		}
	}
}

// BenchmarkDeriveCredentials measures what a member spends on its key as it starts
// (docs/raft.md quotes it).
func BenchmarkDeriveCredentials(b *testing.B) {
	for b.Loop() {
		if _, err := deriveCredentials(testSecret, "app/3f9a1c"); err != nil {
			b.Fatal(err)
		}
	}
}
