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
	refused := start(t, "strict", d.args("migrate", full))
	if code := refused.wait(t, 30*time.Second); code != 3 || !strings.Contains(refused.output(), "--allow-out-of-order") {
		t.Fatalf("migrate without --allow-out-of-order: exit %d; want 3 explaining the flag:\n%s", code, refused.output())
	}
	if n := d.int(t, "SELECT count(*) FROM applied_log WHERE version = 2"); n != 0 {
		t.Fatal("migration 2 was applied without --allow-out-of-order")
	}
	allowed := start(t, "lenient", d.args("migrate", full, "--allow-out-of-order"))
	if code := allowed.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("migrate --allow-out-of-order: exit %d:\n%s", code, allowed.output())
	}
	d.assertAppliedOnce(t, 3)
}
