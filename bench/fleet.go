package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// The fleet scenario measures what the fleet costs a herd: each replica showing itself to its
// fleet when its phase changes, and the fleet guard (--same-env) reading the fleet as the
// replica becomes ready. The same herd runs with each configuration in turn, run after run,
// each against one replica alone of the same configuration.

// fleetConfig is one way of running the herd.
type fleetConfig struct {
	name string
	replicas
}

// fleetConfigs are the configurations compared: without presence (a build of the revision
// -fleet-baseline, when given), with presence, and with presence and --same-env.
func (b *bench) fleetConfigs() ([]fleetConfig, error) {
	guard := replicas{bin: b.bin, extra: []string{"--same-env", "BENCH_SECRET_KEY"},
		env: []string{"BENCH_SECRET_KEY=bench-secret-value-0123456789abcdef"}}
	configs := []fleetConfig{{"presence", replicas{bin: b.bin}}, {"presence + --same-env", guard}}
	if b.opts.fleetBaseline == "" {
		return configs, nil
	}
	bin, err := b.buildRevision(b.opts.fleetBaseline)
	if err != nil {
		return nil, err
	}
	return append([]fleetConfig{{"no presence (" + b.opts.fleetBaseline + ")", replicas{bin: bin}}}, configs...), nil
}

// buildRevision builds the binary of a revision of this repository, from `git archive`: the
// working tree and the repository are left alone.
func (b *bench) buildRevision(rev string) (string, error) {
	src := filepath.Join(b.work, "src-"+rev)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.Command("sh", "-c", `git -C .. archive --format=tar "$1" | tar -x -C "$2"`, "sh", rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive %s: %w\n%s", rev, err, out)
	}
	out := filepath.Join(b.work, "bin-"+rev)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	return fleet.Build(src, out)
}

// fleets runs the fleet scenario: for each configuration one replica alone, then each herd
// size, reporting the herd's ratio to one alone, the connections one replica holds, and how
// many presence writes a replica makes.
func (b *bench) fleets(ctx context.Context) error {
	configs, err := b.fleetConfigs()
	if err != nil {
		return err
	}
	dir, err := b.migrationDir("fleet", b.benchSet())
	if err != nil {
		return err
	}
	alone := make([][]time.Duration, len(configs))
	for range b.opts.runs {
		for i, c := range configs {
			r, err := b.herdOf(ctx, c.replicas, dir, 1, false)
			if err != nil {
				return err
			}
			alone[i] = append(alone[i], r.took)
		}
	}
	for i, c := range configs {
		b.add(fmt.Sprintf("fleet, %s: one replica alone", c.name), seconds(median(alone[i])), "baseline")
	}
	for _, n := range b.opts.herds {
		ratios := make([][]float64, len(configs))
		for range b.opts.runs {
			for i, c := range configs {
				r, err := b.herdOf(ctx, c.replicas, dir, n, false)
				if err != nil {
					return err
				}
				ratios[i] = append(ratios[i], r.took.Seconds()/median(alone[i]).Seconds())
			}
		}
		for i, c := range configs {
			counted, err := b.herdOf(ctx, c.replicas, dir, n, true)
			if err != nil {
				return err
			}
			b.add(fmt.Sprintf("fleet, herd of %d, %s: all ready ÷ one alone", n, c.name),
				ratioCell(ratios[i], "%.3f"), "within noise of no presence")
			b.add(fmt.Sprintf("fleet, herd of %d, %s: connections, peak of one replica / all ÷ %d", n, c.name, n),
				fmt.Sprintf("%d / %.2f", counted.peakConn, float64(counted.peakAll)/float64(n)), "1")
			b.add(fmt.Sprintf("fleet, herd of %d, %s: presence writes per replica", n, c.name),
				fmt.Sprintf("%.2f", float64(counted.presenceWrites)/float64(n)), "one per phase (2–3)")
		}
	}
	return nil
}

// presenceWrites counts the rows inserted into and updated in the presence table of d, once
// every replica's backend has ended (a backend reports its counts as it ends).
func presenceWrites(ctx context.Context, d *database) (int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := d.int(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND starts_with(application_name, 'schemagate/')`, d.name)
		if err != nil {
			return 0, err
		}
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A table that does not exist (a build without presence) has no writes.
	return d.int(ctx, `SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint FROM pg_stat_user_tables
		WHERE relname = 'schemagate_presence'`)
}
