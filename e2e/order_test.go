package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestOutOfOrder: a release adds migration 2 after 1 and 3 were applied. The database's highest
// version already equals the target, yet the replica is not ready (2 is missing); the migrator
// refuses to apply an older migration unless --allow-out-of-order, and then applies exactly it.
func TestOutOfOrder(t *testing.T) {
	d := newDB(t)
	full := writeMigrations(t, migrationSet{N: 3})
	early := t.TempDir()
	for _, f := range []string{"00001_step_1.sql", "00003_step_3.sql"} {
		copyMigration(t, full, early, f)
	}
	if code := start(t, "early", d.args("migrate", early)).wait(t, time.Minute); code != 0 {
		t.Fatalf("migrating 1 and 3 exited %d", code)
	}

	check := start(t, "check", d.args("check", full))
	if code := check.wait(t, 30*time.Second); code != 1 || !strings.Contains(check.Stdout.String(), "00002_step_2.sql") {
		t.Fatalf("check with 2 missing: exit %d, %q; want 1 naming 00002_step_2.sql", code, check.Stdout.String())
	}
	if out := check.Stdout.String(); !strings.Contains(out, "out of order") {
		t.Errorf("check does not say that 00002_step_2.sql is out of order: %q", out)
	}
	runs := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run'")
	refused := start(t, "strict", d.args("migrate", full))
	if code := refused.wait(t, 30*time.Second); code != 2 || !strings.Contains(refused.output(), "--allow-out-of-order") {
		t.Fatalf("migrate without --allow-out-of-order: exit %d; want 2 (the files are wrong for this database) "+
			"explaining the flag:\n%s", code, refused.output())
	}
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE version = 2"); n != 0 {
		t.Fatal("migration 2 was applied without --allow-out-of-order")
	}
	if n := d.int(t, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run'"); n != runs {
		t.Errorf("the refusal journaled %d runs: it must come before any run", n-runs)
	}
	validate := start(t, "validate", []string{"validate", "--dir", full, "--database-url", d.url})
	if code := validate.wait(t, 30*time.Second); code != 2 || !containsAll(validate.Stdout.String(), "00002_step_2.sql",
		"out of order", "--allow-out-of-order") {
		t.Errorf("validate against the database: exit %d:\n%s", code, validate.output())
	}
	allowed := start(t, "lenient", d.args("migrate", full, "--allow-out-of-order"))
	if code := allowed.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("migrate --allow-out-of-order: exit %d:\n%s", code, allowed.output())
	}
	d.assertAppliedOnce(t, 3)
}

// TestValidate: validate checks a migration set without a database, names each problem with its
// file and line and a fix, exits 2 on any finding and 0 on a clean set; migrate refuses the
// same set before it connects.
func TestValidate(t *testing.T) {
	bad := writeFiles(t, map[string]string{
		"00001_init.sql":  "CREATE TABLE a (id int);\n",
		"00002_index.sql": "-- +goose Up\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
		"00003_fn.sql":    "-- +goose Up\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n",
		"00004_next.SQL":  "-- +goose Up\nSELECT 1;\n",
	})
	r := start(t, "validate", []string{"validate", "--dir", bad})
	if code := r.wait(t, 30*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, r.output())
	}
	for _, want := range []string{"00001_init.sql:1: it has no -- +goose Up", "00002_index.sql:2: CREATE INDEX CONCURRENTLY",
		"NO TRANSACTION", "00003_fn.sql:2:", "StatementBegin", "00004_next.SQL", "rename it to 00004_next.sql"} {
		if !strings.Contains(r.Stdout.String(), want) {
			t.Errorf("validate does not report %q:\n%s", want, r.Stdout.String())
		}
	}
	d := newDB(t)
	m := start(t, "migrate", d.args("migrate", bad))
	if code := m.wait(t, 30*time.Second); code != 2 || !strings.Contains(m.output(), "00001_init.sql:1") {
		t.Errorf("migrate of the same set: exit %d:\n%s", code, m.output())
	}
	if n := d.int(t, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'schemagate/migrate'"); n != 0 {
		t.Errorf("migrate connected before refusing the files")
	}
	clean := writeMigrations(t, migrationSet{N: 3})
	ok := start(t, "validate-clean", []string{"validate", "--dir", clean})
	if code := ok.wait(t, 30*time.Second); code != 0 || !strings.Contains(ok.Stdout.String(), "no finding") {
		t.Errorf("a clean set: exit %d:\n%s", code, ok.output())
	}
}
