package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// raftSecret is the benchmark clusters' shared secret.
const raftSecret = "7aab325aaa7d3798c3d36efaab73397b32f42bbbfcba92f40cdffc15720f894a"

// raftFleet gives each of n replicas its own loopback address, 127.0.0.(100+i), on one port.
type raftFleet struct {
	n    int
	port int
}

func newRaftFleet(n int) (raftFleet, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return raftFleet{}, err
	}
	defer l.Close()
	return raftFleet{n: n, port: l.Addr().(*net.TCPAddr).Port}, nil
}

// ip is member i's loopback address: 127.0.0.100 to 127.0.0.249, then 127.0.1.100 on, so that
// fleets of hundreds fit (Linux routes all of 127/8 to the loopback interface).
func (f raftFleet) ip(i int) string { return fmt.Sprintf("127.0.%d.%d", i/150, 100+i%150) }

// start starts the n members as prefix-i with args plus their Raft settings.
func (f raftFleet) start(bin, prefix string, args []string) ([]*fleet.Replica, error) {
	var peers []string
	for i := range f.n {
		peers = append(peers, fmt.Sprintf("%s-%d=%s:%d", prefix, i, f.ip(i), f.port))
	}
	var rs []*fleet.Replica
	for i := range f.n {
		a := append(append([]string{}, args...), "--lock", "raft", "--raft-peers", strings.Join(peers, ","),
			"--raft-listen", fmt.Sprintf("%s:%d", f.ip(i), f.port))
		r, err := fleet.Start(bin, fmt.Sprintf("%s-%d", prefix, i), a, "SCHEMAGATE_RAFT_SECRET="+raftSecret)
		if err != nil {
			for _, s := range rs {
				s.Stop()
			}
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// rafts measures the Raft backend: a herd against one member alone, how soon after the last
// member started a leader is elected, how many database sessions the whole herd holds while
// the leader migrates, and failover after a SIGKILL of the leader.
func (b *bench) rafts(ctx context.Context) error {
	dir, err := b.migrationDir("raft-herd", b.benchSet())
	if err != nil {
		return err
	}
	var single []time.Duration
	for range b.opts.runs {
		r, err := b.raftHerd(ctx, dir, 1)
		if err != nil {
			return err
		}
		single = append(single, r.took)
	}
	base := median(single)
	b.add("raft: one member alone, 20 migrations", seconds(base), "baseline")
	for _, n := range b.opts.herds {
		var ratios []float64
		var elections []time.Duration
		peak := 0
		for range b.opts.runs {
			r, err := b.raftHerd(ctx, dir, n)
			if err != nil {
				return err
			}
			ratios = append(ratios, r.took.Seconds()/base.Seconds())
			elections = append(elections, r.election)
			peak = max(peak, r.peakTotal)
		}
		target := "-"
		if n <= 20 {
			target = "≤1.10"
		}
		b.add(fmt.Sprintf("raft herd of %d: all ready ÷ one alone", n), fmt.Sprintf("%.3f", medianFloat(ratios)), target)
		b.add(fmt.Sprintf("raft herd of %d: last member started → leader elected", n), seconds(median(elections)), "≤1 s")
		b.add(fmt.Sprintf("raft herd of %d: database sessions of all members while the leader migrates", n), fmt.Sprint(peak), "1")
	}
	fdir, err := b.migrationDir("raft-failover", failoverSet)
	if err != nil {
		return err
	}
	var detects []time.Duration
	for range b.opts.runs {
		d, err := b.raftFailover(ctx, fdir)
		if err != nil {
			return err
		}
		detects = append(detects, d)
	}
	b.add("raft: SIGKILL of the leader → next migrator starts (5 members)", seconds(median(detects)), "≤3 s")
	return nil
}

type raftHerdResult struct {
	took      time.Duration // first start to last exit
	election  time.Duration // last start to the first "leader" log line
	peakTotal int           // most schemagate sessions at once during the slow migration
}

func (b *bench) raftHerd(ctx context.Context, dir string, n int) (raftHerdResult, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return raftHerdResult{}, err
	}
	defer d.drop(ctx)
	f, err := newRaftFleet(n)
	if err != nil {
		return raftHerdResult{}, err
	}
	begin := time.Now()
	rs, err := f.start(b.bin, "raft", []string{"migrate", "--database-url", d.url, "--dir", dir})
	if err != nil {
		return raftHerdResult{}, err
	}
	defer func() {
		for _, r := range rs {
			r.Stop()
		}
	}()
	lastStart := rs[len(rs)-1].Started
	// Sessions are counted while the slow migration runs, from 1.5 s into it: a waiter reads
	// the schema once at start and closes its connection after 1 s idle.
	peak := 0
	if n > 1 {
		if err := waitForSleep(ctx, d); err == nil && b.opts.slow > 2*time.Second {
			time.Sleep(1500 * time.Millisecond)
			for range 10 {
				c, err := d.int(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'schemagate/%'", d.name)
				if err == nil {
					peak = max(peak, int(c))
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	var last time.Time
	for _, r := range rs {
		code, err := r.Wait(2 * time.Minute)
		if err != nil {
			return raftHerdResult{}, fmt.Errorf("%w:\n%s", err, r.Output())
		}
		if code != 0 {
			return raftHerdResult{}, fmt.Errorf("%s exited %d:\n%s", r.Name, code, r.Output())
		}
		last = maxTime(last, r.ExitedAt())
	}
	res := raftHerdResult{took: last.Sub(begin), peakTotal: peak}
	var elected time.Time
	for _, r := range rs {
		if at, ok := logged(r.Output(), "this replica is the raft leader"); ok && (elected.IsZero() || at.Before(elected)) {
			elected = at
		}
	}
	if elected.IsZero() {
		return res, fmt.Errorf("no member logged being elected")
	}
	res.election = max(elected.Sub(lastStart), 0)
	return res, nil
}

// raftFailover starts 5 members, kills the leader inside the slow migration, and returns how
// long until the next migrator started its run.
func (b *bench) raftFailover(ctx context.Context, dir string) (time.Duration, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return 0, err
	}
	defer d.drop(ctx)
	f, err := newRaftFleet(5)
	if err != nil {
		return 0, err
	}
	rs, err := f.start(b.bin, "raft", []string{"migrate", "--database-url", d.url, "--dir", dir})
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, r := range rs {
			r.Stop()
		}
	}()
	holder, _, err := waitForSlowStatement(ctx, d, "schemagate/")
	if err != nil {
		return 0, fmt.Errorf("%w; the first member's log:\n%s", err, rs[0].Output())
	}
	cut := time.Now()
	for _, r := range rs {
		if "schemagate/"+r.Name == holder {
			if err := r.Signal(syscall.SIGKILL); err != nil {
				return 0, err
			}
		}
	}
	for _, r := range rs {
		if "schemagate/"+r.Name == holder {
			continue
		}
		if code, err := r.Wait(2 * time.Minute); err != nil || code != 0 {
			return 0, fmt.Errorf("survivor %s: exit %d, %v:\n%s", r.Name, code, err, r.Output())
		}
	}
	var next time.Time
	if err := d.conn.QueryRow(ctx, "SELECT started_at FROM schemagate_journal WHERE kind = 'run' ORDER BY id DESC LIMIT 1").Scan(&next); err != nil {
		return 0, err
	}
	return next.Sub(cut), nil
}

// logged returns when a replica first logged a message starting with prefix.
func logged(output, prefix string) (time.Time, bool) {
	for _, line := range strings.Split(output, "\n") {
		var e struct {
			Time    string `json:"time"`
			Message string `json:"message"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && strings.HasPrefix(e.Message, prefix) {
			t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", e.Time)
			return t, err == nil
		}
	}
	return time.Time{}, false
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// waitForSleep waits until a replica runs a pg_sleep statement.
func waitForSleep(ctx context.Context, d *database) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		n, err := d.int(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%pg_sleep%' AND application_name LIKE 'schemagate/%'", d.name)
		if err == nil && n > 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no replica ran the slow migration within a minute")
}
