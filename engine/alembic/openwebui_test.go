package alembic

import (
	"os"
	"slices"
	"testing"
)

// The headers of Open WebUI v0.7.0's revision files; see testdata/open-webui/README.md.
func TestOpenWebUI(t *testing.T) {
	g, err := ParseDir(os.DirFS("testdata/open-webui"), ".")
	if err != nil {
		t.Fatalf("ParseDir: %v", err)
	}
	const head = "c440947495f3" // add chat_file table
	if heads := g.Heads(); !slices.Equal(heads, []string{head}) {
		t.Errorf("Heads() = %v, want [%s]", heads, head)
	}
	revs := g.Revisions()
	if len(revs) != 29 {
		t.Errorf("%d revisions, want 29", len(revs))
	}
	for _, r := range revs {
		for _, ref := range slices.Concat(r.DownRevisions, r.DependsOn) {
			if _, ok := g.Revision(ref); !ok {
				t.Errorf("%s names unknown revision %s", r.File, ref)
			}
		}
	}
	applied, err := g.Applied([]string{head})
	if err != nil || len(applied) != len(revs) {
		t.Errorf("Applied(%s) = %d revisions, %v; want all %d", head, len(applied), err, len(revs))
	}
	all, err := g.Pending(nil)
	if err != nil || len(all) != len(revs) || all[0].ID != "7e5b5dc7342b" || all[len(all)-1].ID != head {
		t.Errorf("Pending(nil) = %v, %v; want all %d from 7e5b5dc7342b (init) to %s", idsOf(all), err, len(revs), head)
	}
	// A database last migrated by v0.6.3x, at a5c220713937 (add reply_to_id column to message).
	pending, err := g.Pending([]string{"a5c220713937"})
	want := []string{"37f288994c47", "2f1211949ecc", "b10670c03dd5", "90ef40d4714e", "3e0e00844bb0", "6283dc0e4d8d", "81cc2ce44d79", head}
	if err != nil || !slices.Equal(idsOf(pending), want) {
		t.Errorf("Pending(a5c220713937) = %v, %v; want %v", idsOf(pending), err, want)
	}
}
