package main

import (
	"slices"
	"testing"
)

// TestSecretsOfEnvironment: a password that comes from PGPASSWORD, not the URL, is a secret too.
func TestSecretsOfEnvironment(t *testing.T) {
	t.Setenv("PGPASSWORD", "from-the-environment")
	if got := secretsOf("postgres://"); !slices.Contains(got, "from-the-environment") {
		t.Errorf("secretsOf(postgres://) with PGPASSWORD set: %v", got)
	}
}
