package raft

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// TestWeakSecretsRefused: each rule refuses what it is for, with the reason and the command that
// makes a good secret, never the secret itself.
func TestWeakSecretsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, secret, want string
	}{
		{"short", "9f2c71d5a04b9f2c71d5a04b", "24 characters is too short, at least 32"},
		{"old minimum", "0f3a9c2e71b4d8a6", "16 characters is too short"},
		{"one character", strings.Repeat("x", 40), "only 1 different characters"},
		{"two characters", strings.Repeat("01", 20), "only 2 different characters"},
		{"word repeated", "secretsecretsecretsecretsecret12", "only 7 different characters"},
		{"piece repeated", "0123456789abcdef0123456789abcdef", "repeats a 16-character piece"},
		{"piece repeated, cut short", "Tr0ub4dor&3xTr0ub4dor&3xTr0ub4dor", "repeats a 12-character piece"},
		{"lowercase words", "correcthorsebatterystaplesunrise", "letters of one case only"},
		{"words with dashes", "correct-horse-battery-staple-sun", "letters of one case only"},
		{"uppercase words", "CORRECT HORSE BATTERY STAPLE SUN", "letters of one case only"},
		{"digits", "31415926535897932384626433832795028", "35 decimal digits hold about 116 bits, at least 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSecret([]byte(tc.secret))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "raft-secret: ") || !strings.Contains(msg, tc.want) ||
				!strings.HasSuffix(msg, "; generate one with: openssl rand -hex 32") {
				t.Errorf("%q, want raft-secret: …%s…; generate one with: openssl rand -hex 32", msg, tc.want)
			}
			if strings.Contains(msg, tc.secret) {
				t.Errorf("the error shows the secret: %q", msg)
			}
		})
	}
}

// TestRandomSecretsAccepted: what the advice and the previous advice print passes, as do other
// random secrets in the usual encodings.
func TestRandomSecretsAccepted(t *testing.T) {
	good := []string{
		"7c90baa41fc3ebb7192e8952806076df2c1a17993fe2ccd32f42e3da05ea9930", // openssl rand -hex 32
		"4be2d1f07a93c85e16fd0b2a9c47e381",                                 // openssl rand -hex 16
		"4BE2D1F07A93C85E16FD0B2A9C47E381",                                 // upper-case hex
		"gcK9rZQMoGp/101HHqPW/YpMEXXyrD2X5ywZWeJ3aB8=",                     // openssl rand -base64 32
		"kF3-x9_QmZ2vLr8TnYw4Hc7JpBd6GsEa1U0oXiVtNqM",                      // base64url, unpadded
		"6f1c0a52-8d3e-4b97-a2c4-e07d9b15f386-1c9e2b",                      // uuid-like, with more
		"31415926535897932384626433832795028841971",                        // 41 digits: 136 bits
		"Ħé11ø wörld, ünïcödé ïs fïnë töö ☃☃ 2024!",                        // not ASCII
	}
	// The advice, many times over: a random secret is refused only by a vanishingly rare
	// accident (fewer than 8 different characters, a repeated piece).
	for range 200 {
		b := make([]byte, 32)
		rand.Read(b)
		good = append(good, hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b))
	}
	for _, s := range good {
		if err := checkSecret([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestPeriod(t *testing.T) {
	for s, want := range map[string]int{"": 0, "a": 1, "aaaa": 1, "abab": 2, "abcab": 3, "abcd": 4, "aabaa": 3} {
		if got := period([]rune(s)); got != want {
			t.Errorf("period(%q) = %d, want %d", s, got, want)
		}
	}
}
