package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

const (
	// holdBack is how long an event waits for earlier events of other replicas before it is
	// told, so that the narration keeps the order of the logs' timestamps.
	holdBack  = 150 * time.Millisecond
	pollEvery = 20 * time.Millisecond
	// killAfter is how far into the slow migration the demo kills its migrator.
	killAfter = 500 * time.Millisecond
	// rolloutTimeout bounds one rollout; the replicas' own --timeout is the same.
	rolloutTimeout = time.Minute
)

// release is one version of the app: its migration set, and the migration whose migrator the
// demo kills, if any.
type release struct {
	name string
	set  fleet.MigrationSet
	kill int
}

// releases are the three releases rolled out: v1 brings migrations 1–3, v2 adds 4–5, v3 adds
// 6–8 and is killed during 7. Migrations 2 and 5 take about a second and 7 about two, so that
// the replicas visibly wait (on SQLite they count rows instead of sleeping).
func releases(sqlite bool) []release {
	slow := map[int]float64{2: 1, 5: 1, 7: 2}
	return []release{
		{name: "v1", set: fleet.MigrationSet{N: 3, Slow: slow, SQLite: sqlite}},
		{name: "v2", set: fleet.MigrationSet{N: 5, Slow: slow, SQLite: sqlite}},
		{name: "v3", set: fleet.MigrationSet{N: 8, Slow: slow, SQLite: sqlite}, kill: 7},
	}
}

// header introduces a rollout of rel onto a database at version from.
func (rel release) header(number, from int) string {
	what := "onto an empty database"
	if from > 0 {
		what = fmt.Sprintf("onto the database at version %d", from)
	}
	var slow []string
	for v := from + 1; v <= rel.set.N; v++ {
		if sec := rel.set.Slow[v]; sec > 0 {
			slow = append(slow, fmt.Sprintf("%05d takes about %gs", v, sec))
		}
	}
	s := fmt.Sprintf("Rollout %d: release %s brings migrations %d–%d %s (%s)", number, rel.name, from+1, rel.set.N, what,
		strings.Join(slow, ", "))
	if rel.kill != 0 {
		s += fmt.Sprintf(".\nThe demo SIGKILLs the migrator %s into %05d", seconds(killAfter), rel.kill)
	}
	return s
}

// rollout writes rel's migrations, starts the replicas at once and narrates until all have
// exited. The replicas are stopped when it returns.
func (d *demo) rollout(ctx context.Context, number int, rel release) (*record, error) {
	dir := filepath.Join(d.tmp, "release-"+rel.name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := rel.set.Write(dir); err != nil {
		return nil, fmt.Errorf("write the migrations of release %s: %w", rel.name, err)
	}
	names, err := migrationFiles(dir)
	if err != nil {
		return nil, err
	}
	d.dir = dir
	fmt.Fprintf(d.out, "\n%s.\n", rel.header(number, d.version))
	fmt.Fprintf(d.out, "%d replicas start at once: schemagate migrate --dir release-%s\n\n", d.opts.replicas, rel.name)

	start := time.Now()
	prefix := "web-" + rel.name
	rs, err := fleet.StartAll(d.bin, d.opts.replicas, prefix, d.replicaArgs(dir))
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, r := range rs {
			r.Stop()
		}
	}()
	rec := newRecord(number, rel, replicaNames(rs), names, d.version)
	w := newWatch(newNarrator(d.out, start, rec), rs)
	if d.started != nil {
		d.started(rec, rs)
	}
	err = w.run(ctx)
	rec.took = time.Since(start)
	return rec, err
}

func (d *demo) replicaArgs(dir string) []string {
	return []string{"migrate", "--database-url", d.db.url, "--dir", dir,
		"--log-format", "json", "--log-level", "info", "--timeout", rolloutTimeout.String()}
}

func replicaNames(rs []*fleet.Replica) []string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return names
}

// migrationFiles lists the migration files in dir, in version order.
func migrationFiles(dir string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.sql"))
	if err != nil {
		return nil, err
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	slices.Sort(names) // zero-padded versions sort as numbers
	return names, nil
}
