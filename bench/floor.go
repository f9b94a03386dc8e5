package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The wake-up floor: how long PostgreSQL alone takes, on this machine, to run the sessions that
// one release wakes at once. n-1 sessions (the waiters of a herd of n) queue for an advisory
// lock's shared mode while one session holds it; the holder lets go, and each queued session
// reads clock_timestamp() in the same statement that was granted the lock, with no round trip
// to its client. The delay from the release to each of those readings is what the server and
// the machine's scheduler cost before any waiter's own work begins: a tool's "final commit →
// waiter ready" on the same machine cannot be lower.

// floorKey is the advisory lock of the measurement, in its own scratch database.
const floorKey = 8_020_512

// wakeFloor measures the floor for a herd of n, runs times, and returns every queued session's
// delay of every run.
func (b *bench) wakeFloor(ctx context.Context, n, runs int) ([]time.Duration, error) {
	var all []time.Duration
	for range runs {
		ds, err := b.wakeFloorOnce(ctx, n)
		if err != nil {
			return nil, err
		}
		all = append(all, ds...)
	}
	return all, nil
}

func (b *bench) wakeFloorOnce(ctx context.Context, n int) ([]time.Duration, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return nil, err
	}
	defer d.drop(ctx)
	if _, err := d.conn.Exec(ctx, "SELECT pg_advisory_lock($1)", floorKey); err != nil {
		return nil, err
	}
	type woke struct {
		at  time.Time
		err error
	}
	answers := make(chan woke, n)
	conns, err := openSessions(ctx, d.url, n-1)
	if err != nil {
		return nil, fmt.Errorf("the wake-up floor: %w", err)
	}
	defer conns.close(ctx)
	for _, c := range conns {
		go func() {
			var w woke
			w.err = c.QueryRow(ctx, "SELECT clock_timestamp() FROM (SELECT pg_advisory_lock_shared($1)) granted",
				floorKey).Scan(&w.at)
			answers <- w
		}()
	}
	// Release only once every session is queued.
	for {
		queued, err := d.int(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1", floorKey)
		if err != nil {
			return nil, err
		}
		if int(queued) == len(conns) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	var released time.Time
	if err := d.conn.QueryRow(ctx, "SELECT clock_timestamp() FROM (SELECT pg_advisory_unlock($1)) released", floorKey).Scan(&released); err != nil {
		return nil, err
	}
	var out []time.Duration
	for range conns {
		w := <-answers
		if w.err != nil {
			return nil, w.err
		}
		out = append(out, w.at.Sub(released))
	}
	return out, nil
}

// sessions are plain connections to one database, for the measurements of the machine itself.
type sessions []*pgx.Conn

// openSessions opens n connections to url, or none.
func openSessions(ctx context.Context, url string, n int) (sessions, error) {
	var ss sessions
	for range n {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			ss.close(ctx)
			return nil, fmt.Errorf("%d connections needed: %w", n, err)
		}
		ss = append(ss, c)
	}
	return ss, nil
}

// close ends the connections; closing them again does nothing.
func (ss sessions) close(ctx context.Context) {
	for _, c := range ss {
		c.Close(context.WithoutCancel(ctx))
	}
}

// backendExitCost opens n connections, runs SELECT 1 on each, closes them all at once, and
// returns the machine's busy CPU time (/proc/stat: user, nice, system, interrupts) from the
// close until the server has ended them and half a second more, less what the same span costs
// idle, divided by n: what one backend's exit costs this machine (page tables, the libraries'
// exit handlers). It counts in clock ticks (10 ms), so n should be in the tens.
func (b *bench) backendExitCost(ctx context.Context, n int) (time.Duration, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return 0, err
	}
	defer d.drop(ctx)
	conns, err := openSessions(ctx, d.url, n)
	if err != nil {
		return 0, err
	}
	defer conns.close(ctx)
	for _, c := range conns {
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			return 0, err
		}
	}
	settle := 500 * time.Millisecond
	time.Sleep(settle)
	idle0 := busyCPU()
	time.Sleep(settle)
	idle := busyCPU() - idle0

	begin, busy0 := time.Now(), busyCPU()
	conns.close(ctx)
	for {
		left, err := d.int(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", d.name)
		if err != nil {
			return 0, err
		}
		if left == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(settle)
	busy := busyCPU() - busy0
	span := time.Since(begin)
	busy -= time.Duration(float64(idle) * span.Seconds() / settle.Seconds())
	return max(busy, 0) / time.Duration(n), nil
}

// busyCPU is the time all CPUs of the machine have been busy since boot, from /proc/stat.
func busyCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	var busy int64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseInt(f, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += v
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// startExitCost runs bin with args runs times and returns the median CPU time (user and
// system, all threads, from wait4) of one run: what starting and ending the program costs this
// machine when it does nothing else.
func startExitCost(ctx context.Context, bin string, runs int, args ...string) (time.Duration, error) {
	var ds []time.Duration
	for range runs {
		cmd := exec.CommandContext(ctx, bin, args...)
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
		}
		ds = append(ds, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	}
	return median(ds), nil
}
