package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// failoverSet: 20 migrations; the tenth sleeps two minutes on its first attempt only, so the
// migrator can be cut off inside it and its successor re-runs it without the sleep.
var failoverSet = fleet.MigrationSet{N: 20, FirstSlow: map[int]float64{10: 120}}

// failovers measures the remaining work alone, then failover after SIGKILL and after a
// blackhole, reported against it.
func (b *bench) failovers(ctx context.Context) error {
	dir, err := b.migrationDir("failover", failoverSet)
	if err != nil {
		return err
	}
	var remaining []time.Duration
	for range b.opts.runs {
		d, err := b.remaining(ctx, dir)
		if err != nil {
			return err
		}
		remaining = append(remaining, d)
	}
	rest := median(remaining)
	b.add("remaining work alone (migrations 10–20)", seconds(rest), "baseline")
	for _, how := range []string{"kill", "blackhole"} {
		var totals, detects []time.Duration
		for range b.opts.runs {
			total, detect, err := b.failover(ctx, dir, how)
			if errors.Is(err, fleet.ErrNoBlackhole) {
				b.add("failover after a network blackhole", "not measured: "+err.Error(), "≤20 s")
				break
			}
			if err != nil {
				return err
			}
			totals, detects = append(totals, total), append(detects, detect)
		}
		if len(totals) == 0 {
			continue
		}
		label, target := "SIGKILL of the migrator", "≤ remaining work + 1 s"
		if how == "blackhole" {
			label, target = "blackhole + SIGSTOP of the migrator", "≤20 s"
		}
		b.add("failover after "+label+": cut → next migrator starts", seconds(median(detects)), target)
		b.add("failover after "+label+": cut → all survivors ready", seconds(median(totals)),
			fmt.Sprintf("remaining work %s + failover", seconds(rest)))
	}
	return nil
}

// remaining times one replica applying migrations 10–20 on a database already at 9, with the
// tenth's sleep already spent: what a successor has left to do.
func (b *bench) remaining(ctx context.Context, dir string) (time.Duration, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return 0, err
	}
	defer d.drop(ctx)
	if err := b.one(d, dir, "--target-version", "9"); err != nil {
		return 0, err
	}
	if _, err := d.conn.Exec(ctx, "SELECT setval('attempts', 1)"); err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := b.one(d, dir); err != nil {
		return 0, err
	}
	return time.Since(begin), nil
}

// one runs a single replica to completion.
func (b *bench) one(d *database, dir string, extra ...string) error {
	r, err := fleet.Start(b.bin, "alone", append([]string{"migrate", "--database-url", d.url, "--dir", dir}, extra...))
	if err != nil {
		return err
	}
	defer r.Stop()
	code, err := r.Wait(5 * time.Minute)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d:\n%s", code, r.Output())
	}
	return err
}

// failover starts 5 replicas, cuts the migrator off inside the slow migration (how: kill or
// blackhole), and returns how long until every survivor was ready and until the next migrator
// started its run.
func (b *bench) failover(ctx context.Context, dir, how string) (total, detect time.Duration, err error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return 0, 0, err
	}
	defer d.drop(ctx)
	rs, err := fleet.StartAll(b.bin, 5, "failover", []string{"migrate", "--database-url", d.url, "--dir", dir})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		for _, r := range rs {
			r.Stop()
		}
	}()
	holder, port, err := waitForSlowStatement(ctx, d, "schemagate/")
	if err != nil {
		return 0, 0, err
	}
	var victim *fleet.Replica
	for _, r := range rs {
		if "schemagate/"+r.Name == holder {
			victim = r
		}
	}
	if victim == nil {
		return 0, 0, fmt.Errorf("no replica is %s", holder)
	}
	cut := time.Now()
	switch how {
	case "kill":
		err = victim.Signal(syscall.SIGKILL)
	case "blackhole":
		var heal func() error
		if heal, err = fleet.Blackhole(port); err == nil {
			defer heal()
			err = victim.Signal(syscall.SIGSTOP)
		}
	}
	if err != nil {
		return 0, 0, err
	}
	var last time.Time
	for _, r := range rs {
		if r == victim {
			continue
		}
		code, err := r.Wait(2 * time.Minute)
		if err != nil || code != 0 {
			return 0, 0, fmt.Errorf("survivor %s: exit %d, %v:\n%s", r.Name, code, err, r.Output())
		}
		if r.ExitedAt().After(last) {
			last = r.ExitedAt()
		}
	}
	var next time.Time
	if err := d.conn.QueryRow(ctx, "SELECT started_at FROM schemagate_journal WHERE kind = 'run' ORDER BY id DESC LIMIT 1").Scan(&next); err != nil {
		return 0, 0, err
	}
	return last.Sub(cut), next.Sub(cut), nil
}

// waitForSlowStatement waits until a replica (a session whose application_name starts with
// prefix) runs the slow statement, and returns its application_name and client port.
func waitForSlowStatement(ctx context.Context, d *database, prefix string) (string, int, error) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var name string
		var port int
		err := d.conn.QueryRow(ctx, `SELECT application_name, client_port FROM pg_stat_activity
			WHERE datname = $1 AND state = 'active' AND query LIKE '%first_attempt_sleeps%' AND starts_with(application_name, $2)`,
			d.name, prefix).Scan(&name, &port)
		if err == nil && strings.HasPrefix(name, prefix) {
			return name, port, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "", 0, errors.New("no replica started the slow migration within a minute")
}
