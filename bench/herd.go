package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// benchSet is the migration set of the herd measurements: 20 migrations, the tenth slow.
func (b *bench) benchSet() fleet.MigrationSet {
	return fleet.MigrationSet{N: 20, Slow: map[int]float64{10: b.opts.slow.Seconds()}}
}

// herdResult is one herd (or single replica) run.
type herdResult struct {
	took     time.Duration   // first start to last exit
	wakeups  []time.Duration // final commit to each waiter's exit
	readies  []time.Duration // final commit to each waiter's "schema ready" log line
	peakConn int             // most connections one replica held at once
	peakAll  int             // most connections all replicas held at once
	// presenceWrites is how many rows the replicas inserted into or updated in the presence
	// table (counted runs only).
	presenceWrites int64
}

// herds measures a single replica, then each herd size, and reports ratios, wake-up latency and
// connections.
func (b *bench) herds(ctx context.Context) error {
	dir, err := b.migrationDir("herd", b.benchSet())
	if err != nil {
		return err
	}
	var single []time.Duration
	for range b.opts.runs {
		r, err := b.herd(ctx, dir, 1, false)
		if err != nil {
			return err
		}
		single = append(single, r.took)
	}
	base := median(single)
	b.add(fmt.Sprintf("one replica alone, 20 migrations (one sleeps %s)", b.opts.slow), seconds(base), "baseline")
	targets := map[int]string{20: "≤1.05", 100: "≤1.10"}
	for _, n := range b.opts.herds {
		var launches []time.Duration
		for range b.opts.runs {
			d, err := b.launch(n)
			if err != nil {
				return err
			}
			launches = append(launches, d)
		}
		b.add(fmt.Sprintf("floor: %d processes of `schemagate version`, start to last exit", n), seconds(median(launches)),
			"machine baseline")
		var ratios []float64
		var wakeups, readies []time.Duration
		for range b.opts.runs {
			r, err := b.herd(ctx, dir, n, false)
			if err != nil {
				return err
			}
			ratios = append(ratios, r.took.Seconds()/base.Seconds())
			wakeups = append(wakeups, r.wakeups...)
			readies = append(readies, r.readies...)
		}
		// Connections are counted in a run of their own: polling pg_stat_activity costs CPU the
		// timed runs must not share.
		counted, err := b.herd(ctx, dir, n, true)
		if err != nil {
			return err
		}
		peak := counted.peakConn
		target := targets[n]
		if target == "" {
			target = "-"
		}
		b.add(fmt.Sprintf("herd of %d: all ready ÷ one alone", n), ratioCell(ratios, "%.3f"), target)
		b.add(fmt.Sprintf("herd of %d: final commit → waiter logs ready, p50 / p99", n),
			millis(percentile(readies, 50))+" / "+millis(percentile(readies, 99)), "p99 ≤50 ms")
		b.add(fmt.Sprintf("herd of %d: final commit → waiter process gone, p50 / p99", n),
			millis(percentile(wakeups, 50))+" / "+millis(percentile(wakeups, 99)), "p99 ≤50 ms")
		b.add(fmt.Sprintf("herd of %d: peak connections held by one replica", n), fmt.Sprint(peak), "≤1 while waiting")
	}
	return nil
}

// herd starts n replicas at once on a fresh database and waits for all of them. With count, it
// also samples how many connections each replica holds.
func (b *bench) herd(ctx context.Context, dir string, n int, count bool) (herdResult, error) {
	return b.herdOf(ctx, replicas{bin: b.bin}, dir, n, count)
}

// replicas are what a herd runs: a binary, flags added to migrate's, and environment.
type replicas struct {
	bin   string
	extra []string
	env   []string
}

// herdOf is herd with the replicas rs.
func (b *bench) herdOf(ctx context.Context, rs0 replicas, dir string, n int, count bool) (herdResult, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return herdResult{}, err
	}
	defer d.drop(ctx)
	var sampler *sampler
	if count {
		sampler = startSampler(ctx, d, "schemagate/", 20*time.Millisecond)
	}
	begin := time.Now()
	args := append([]string{"migrate", "--database-url", d.url, "--dir", dir}, rs0.extra...)
	rs, err := fleet.StartAll(rs0.bin, n, "bench", args, rs0.env...)
	if err != nil {
		return herdResult{}, err
	}
	defer func() {
		for _, r := range rs {
			r.Stop()
		}
	}()
	var last time.Time
	for _, r := range rs {
		code, err := r.Wait(5 * time.Minute)
		if err != nil {
			return herdResult{}, err
		}
		if code != 0 {
			return herdResult{}, fmt.Errorf("%s exited %d:\n%s", r.Name, code, r.Output())
		}
		if r.ExitedAt().After(last) {
			last = r.ExitedAt()
		}
	}
	res := herdResult{took: last.Sub(begin)}
	if sampler != nil {
		res.peakConn, res.peakAll = sampler.stop()
		if res.presenceWrites, err = presenceWrites(ctx, d); err != nil {
			return res, err
		}
	}
	var commit time.Time
	var migrator string
	if err := d.conn.QueryRow(ctx, "SELECT at, replica FROM applied_log ORDER BY version DESC LIMIT 1").Scan(&commit, &migrator); err != nil {
		return res, err
	}
	for _, r := range rs {
		// Only replicas that were waiting when the migrator committed woke up; one that started
		// later took the fast path.
		if "schemagate/"+r.Name != migrator && waited(r.Output()) {
			res.wakeups = append(res.wakeups, r.ExitedAt().Sub(commit))
			if at, ok := readyLogged(r.Output()); ok {
				res.readies = append(res.readies, at.Sub(commit))
			}
		}
	}
	return res, nil
}

// sampler polls pg_stat_activity for the most connections any one replica holds at once, and
// the most all replicas hold together; replicas are the sessions whose application_name starts
// with a prefix.
type sampler struct {
	done          chan struct{}
	wg            sync.WaitGroup
	peak, peakAll int
}

func startSampler(ctx context.Context, d *database, prefix string, every time.Duration) *sampler {
	s := &sampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			var one, all int
			err := d.conn.QueryRow(ctx, `SELECT coalesce(max(c), 0), coalesce(sum(c), 0) FROM (SELECT count(*) AS c
				FROM pg_stat_activity WHERE datname = $1 AND starts_with(application_name, $2) GROUP BY application_name) x`,
				d.name, prefix).Scan(&one, &all)
			if err == nil {
				s.peak, s.peakAll = max(s.peak, one), max(s.peakAll, all)
			}
			select {
			case <-s.done:
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peaks: one replica, all replicas.
func (s *sampler) stop() (one, all int) {
	close(s.done)
	s.wg.Wait()
	return s.peak, s.peakAll
}

// readyLogged returns when a replica logged that the schema is ready.
func readyLogged(output string) (time.Time, bool) { return logged(output, "schema ready") }

// waited reports whether a replica's log shows it waited for the migrator.
func waited(output string) bool {
	return strings.Contains(output, `"message":"waiting: `)
}

// launch times starting n processes that do nothing (schemagate version) and waiting for all:
// the most a herd of n could cost on this machine before any coordination.
func (b *bench) launch(n int) (time.Duration, error) {
	begin := time.Now()
	rs, err := fleet.StartAll(b.bin, n, "null", []string{"version"})
	if err != nil {
		return 0, err
	}
	var last time.Time
	for _, r := range rs {
		if _, err := r.Wait(time.Minute); err != nil {
			return 0, err
		}
		if r.ExitedAt().After(last) {
			last = r.ExitedAt()
		}
	}
	return last.Sub(begin), nil
}
