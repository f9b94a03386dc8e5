// Package fingerprint computes what a replica publishes about the value of a named variable
// for the fleet guard: a fingerprint that lets replicas compare their values without any of
// them publishing a value.
//
// A fingerprint is argon2id of the value, salted with the scope (the lock namespace or
// cluster) and the variable's name, with pinned parameters: 4 passes over 19 MiB, one lane,
// 16 bytes out, written "v1:" and 32 hex digits.
//
// # Threat model
//
// Fingerprints are stored where every replica can read them, so anyone who can read the
// database can read them too. What that reader learns:
//
//   - whether two replicas hold the same value of a variable (equal fingerprints), which is
//     what the fleet guard needs;
//   - nothing about the value itself, except by guessing: checking one guess costs one
//     argon2id evaluation (about 75 ms and 19 MiB on one core of a 2-core build machine;
//     BenchmarkOf measures it), and the memory it takes keeps GPUs and ASICs from running
//     guesses in bulk.
//
// What it does not protect: a value with little entropy (a short password, a name from a
// list, a port number) is still found by trying every candidate, given time. Only the cost of
// each try rises. Secrets that matter should be long random strings.
//
// The salt is not secret, and need not be: it is derived from the scope and the name, which
// readers of the database know anyway. Its job is to make each (scope, name) pair a separate
// function, so that equal values under different names or namespaces have different
// fingerprints, and so that a guess computed for one variable cannot be reused for another: a
// table of precomputed fingerprints is good for one variable of one namespace only.
//
// The parameters are part of the format. Changing them changes every fingerprint, so a change
// takes a new version tag ("v2:"), and replicas compare only fingerprints of the same version.
package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"golang.org/x/crypto/argon2"
)

// The pinned argon2id parameters of version 1. Memory stays well below a sidecar's memory limit
// (the chart's is 64 MiB, about 20 MiB of which the process needs for itself); the passes bring
// one evaluation to tens of milliseconds. Together they are twice OWASP's minimum for argon2id
// (19 MiB, 2 passes).
const (
	// version prefixes every fingerprint of these parameters.
	version = "v1"
	// passes is argon2id's time parameter: how many times it fills the memory.
	passes = 4
	// memoryKiB is the memory one evaluation fills, in KiB.
	memoryKiB = 19 * 1024
	// lanes is argon2id's parallelism: one, so that an evaluation runs on one core and leaves
	// the app's other cores alone. (More lanes would not cost an attacker more per guess.)
	lanes = 1
	// size is the length of the hash, in bytes: 128 bits, so that fingerprints of different
	// values do not collide by chance.
	size = 16
)

// Of returns the fingerprint of value, the value of the variable name in scope (the lock
// namespace, or the cluster, whose replicas compare their values): "v1:" and 32 hex digits.
// It takes tens of milliseconds and 19 MiB of memory, by design.
func Of(scope, name, value string) string {
	key := argon2.IDKey([]byte(value), salt(scope, name), passes, memoryKiB, lanes, size)
	return version + ":" + hex.EncodeToString(key)
}

// salt derives argon2's salt from the scope and the name. Each is prefixed with its length, so
// that no two pairs give the same salt ("a/b", "c" and "a", "b/c" differ).
func salt(scope, name string) []byte {
	h := sha256.New()
	h.Write([]byte("schemagate/fingerprint/" + version))
	for _, s := range []string{scope, name} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	return h.Sum(nil)
}
