package main

import (
	"strings"
	"testing"
)

// TestParseSameEnv: names given one by one or with commas, each kept once; a variable that is
// not set or is empty is refused naming it, before anything else happens.
func TestParseSameEnv(t *testing.T) {
	env := map[string]string{"WEBUI_SECRET_KEY": "s3cr3t-value", "JWT_SECRET": "jwt-value", "EMPTY": "  "}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	got, err := parseSameEnv([]string{"WEBUI_SECRET_KEY,JWT_SECRET", "WEBUI_SECRET_KEY"}, lookup)
	if err != nil || len(got) != 2 || got[0] != (sameValue{"WEBUI_SECRET_KEY", "s3cr3t-value"}) || got[1].name != "JWT_SECRET" {
		t.Fatalf("parseSameEnv: %v, %v", got, err)
	}
	for entry, want := range map[string]string{
		"MISSING":    "--same-env MISSING: the variable is not set",
		"EMPTY":      "--same-env EMPTY: the variable is empty",
		"NOT A NAME": `same-env: "NOT A NAME" is not a variable name`,
	} {
		if _, err := parseSameEnv([]string{entry}, lookup); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", entry, err, want)
		}
	}
	fps := fingerprints("app/goose_db_version", got)
	if len(fps) != 2 || !strings.HasPrefix(fps["WEBUI_SECRET_KEY"], "v1:") || strings.Contains(fps["WEBUI_SECRET_KEY"], "s3cr3t") {
		t.Errorf("fingerprints: %v", fps)
	}
}

// TestPresenceTable: the presence table is named after the journal's, in its schema.
func TestPresenceTable(t *testing.T) {
	for journal, want := range map[string]string{
		"schemagate_journal":     "schemagate_presence",
		"ops.schemagate_journal": "ops.schemagate_presence",
		"app_journal":            "app_presence",
		"ops.history":            "ops.history_presence",
	} {
		if got, err := presenceTable(journal); err != nil || got != want {
			t.Errorf("presenceTable(%q) = %q, %v; want %q", journal, got, err, want)
		}
	}
	if _, err := presenceTable(strings.Repeat("j", 60)); err == nil {
		t.Error("a presence table name longer than PostgreSQL keeps was accepted")
	}
}
