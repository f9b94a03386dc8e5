package fingerprint

import (
	"regexp"
	"testing"
	"time"
)

// TestPinned: a fingerprint is compared between replicas that may run different builds, so the
// same input gives the same output in every build of version 1. The expected value was
// computed with the reference C implementation (libargon2's argon2id_hash_raw, t=4, m=19456,
// p=1, 16 bytes) on the salt salt() derives, not with this package.
func TestPinned(t *testing.T) {
	const want = "v1:3a5c299abfc19103da54ad98b3fd5e06"
	if got := Of("app/goose_db_version", "SECRET_KEY", "correct horse battery staple"); got != want {
		t.Errorf("Of = %s, want %s: the parameters of %s changed, which needs a new version", got, want, version)
	}
}

func TestFormat(t *testing.T) {
	if got := Of("s", "n", "v"); !regexp.MustCompile(`^v1:[0-9a-f]{32}$`).MatchString(got) {
		t.Errorf("Of = %q, want v1: and 32 hex digits", got)
	}
}

// TestDiffers: the same value under another name or scope has another fingerprint, and so has
// another value; the length prefixes keep pairs that concatenate alike apart.
func TestDiffers(t *testing.T) {
	type in struct{ scope, name, value string }
	cases := []in{
		{"app/goose_db_version", "SECRET_KEY", "hunter2"},
		{"app/goose_db_version", "SECRET_KEY", "hunter3"},
		{"app/goose_db_version", "API_KEY", "hunter2"},
		{"other/goose_db_version", "SECRET_KEY", "hunter2"},
		{"app/goose_db_versionSECRET_KEY", "", "hunter2"},
		{"", "app/goose_db_versionSECRET_KEY", "hunter2"},
		{"app", "", "hunter2"},
		{"", "app", "hunter2"},
	}
	seen := map[string]in{}
	for _, c := range cases {
		fp := Of(c.scope, c.name, c.value)
		if prev, dup := seen[fp]; dup {
			t.Errorf("%+v and %+v have the same fingerprint %s", prev, c, fp)
		}
		seen[fp] = c
	}
	if a, b := Of("s", "n", "v"), Of("s", "n", "v"); a != b {
		t.Errorf("the same input gave %s and %s", a, b)
	}
}

// TestCostsTensOfMilliseconds guards the memory-hardness: checking one guess of a value against
// its fingerprint must cost at least 10 ms, so that reading the database does not let anyone
// test guesses cheaply. It fails if the parameters are weakened.
//
// The work is set by the parameters (4 passes over 19 MiB, about 75 ms on the 2-core build
// machine), not by the machine's load: the fastest of several runs is taken, and noise only
// ever adds time, so a busy machine cannot make it pass wrongly or fail. Only a core more than
// five times as fast as the build machine's would go under the bound; the parameters are also
// asserted, so that this test cannot pass with weaker ones on a slow machine either.
func TestCostsTensOfMilliseconds(t *testing.T) {
	if passes*memoryKiB < 4*19*1024 || memoryKiB < 19*1024 || size < 16 {
		t.Fatalf("argon2id parameters %d passes × %d KiB, %d bytes: weaker than 4 × 19 MiB, 16 bytes", passes, memoryKiB, size)
	}
	fastest := time.Hour
	for range 3 {
		start := time.Now()
		Of("app/goose_db_version", "SECRET_KEY", "guess")
		fastest = min(fastest, time.Since(start))
	}
	if fastest < 10*time.Millisecond {
		t.Errorf("one fingerprint took %v, want at least 10 ms per guess", fastest)
	}
	t.Logf("one fingerprint: %v (fastest of 3)", fastest)
}

// BenchmarkOf measures what one guess costs: go test -bench Of -benchmem ./internal/fingerprint
func BenchmarkOf(b *testing.B) {
	for b.Loop() {
		Of("app/goose_db_version", "SECRET_KEY", "correct horse battery staple")
	}
}
