package raft

import (
	"fmt"
	"math"
	"strings"
	"unicode"
)

// The secret must withstand guessing offline: whoever reaches the Raft port receives the
// certificate, whose key is derived from the secret and the cluster name, and the cluster name
// is no secret. So a secret must look random; checkSecret refuses one that is short or plainly
// is not. The rules catch the obvious, not every weak secret: the way to a good one is
// secretAdvice.
const (
	// minSecretChars: 32 random hex digits hold 128 bits, and hex is the least dense
	// encoding openssl rand prints.
	minSecretChars = 32
	// minSecretDistinct: fewer different characters is a pattern ("aaaa…", "abab…"). 32
	// random hex digits use fewer about once in 30 million.
	minSecretDistinct = 8
	// minSecretBits bounds the strength estimatedBits gives.
	minSecretBits = 128
)

// secretAdvice ends every refusal.
const secretAdvice = "generate one with: openssl rand -hex 32"

// checkSecret refuses a secret that is short or plainly not random, saying why without
// showing it.
func checkSecret(secret []byte) error {
	s := []rune(string(secret))
	var reason string
	if len(s) < minSecretChars {
		reason = fmt.Sprintf("%d characters is too short, at least %d are needed", len(s), minSecretChars)
	} else if d := distinct(s); d < minSecretDistinct {
		reason = fmt.Sprintf("it uses only %d different characters, a random secret at least %d", d, minSecretDistinct)
	} else if p := period(s); p <= len(s)/2 {
		reason = fmt.Sprintf("it repeats a %d-character piece", p)
	} else if wordLike(s) {
		reason = "it is letters of one case only, like words"
	} else if bits, alphabet := estimatedBits(s); bits < minSecretBits {
		reason = fmt.Sprintf("%d %s hold about %.0f bits, at least %d are needed", len(s), alphabet, bits, minSecretBits)
	}
	if reason == "" {
		return nil
	}
	return fmt.Errorf("raft-secret: %s; %s", reason, secretAdvice)
}

// distinct counts the different characters of s.
func distinct(s []rune) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}

// period is the length of the shortest piece that s repeats (as "abcab" repeats "abc"): len(s)
// when it repeats none.
func period(s []rune) int {
	// border[i] is the length of the longest proper prefix of s[:i+1] that is also its suffix.
	border := make([]int, len(s))
	for i := 1; i < len(s); i++ {
		k := border[i-1]
		for k > 0 && s[i] != s[k] {
			k = border[k-1]
		}
		if s[i] == s[k] {
			k++
		}
		border[i] = k
	}
	if len(s) == 0 {
		return 0
	}
	return len(s) - border[len(s)-1]
}

// wordLike reports whether s is only lowercase, or only uppercase, letters, with or without
// spaces, '-', '_' or '.' between them: words, which are guessed long before random strings.
func wordLike(s []rune) bool {
	separator := func(r rune) bool { return strings.ContainsRune(" -_.", r) }
	only := func(letter func(rune) bool) bool {
		for _, r := range s {
			if !letter(r) && !separator(r) {
				return false
			}
		}
		return true
	}
	return only(unicode.IsLower) || only(unicode.IsUpper)
}

// estimatedBits is the strength of s were each character drawn at random from the smallest
// common alphabet that holds them all: decimal digits (3.3 bits a character), hex digits of
// one case (4), base64 or base64url (6), anything else (log2 95, the printable ASCII
// characters: 6.6).
func estimatedBits(s []rune) (bits float64, alphabet string) {
	in := func(chars string) bool {
		for _, r := range s {
			if !strings.ContainsRune(chars, r) {
				return false
			}
		}
		return true
	}
	const digits, upper, lower = "0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"
	size := 95
	switch {
	case in(digits):
		size, alphabet = 10, "decimal digits"
	case in(digits + "abcdef"), in(digits + "ABCDEF"):
		size, alphabet = 16, "hex digits"
	case in(digits + upper + lower + "+/=-_"):
		size, alphabet = 64, "base64"
	default:
		alphabet = "printable characters"
	}
	return float64(len(s)) * math.Log2(float64(size)), alphabet
}
