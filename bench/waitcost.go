package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemagate/schemagate/internal/pgscratch"
)

// The waiting cost: what replicas that only wait for the migrator cost the database. n replicas
// of a contender start at once on the cut set, whose version 10 sleeps -cut-sleep on its first
// attempt, on a throwaway server of their own that logs every statement as it completes
// (log_min_duration_statement = 0, with the time and the application name). From waitSettle
// after the migrator entered that statement until waitSettle before it ends, the scenario
// counts the statements the waiting replicas completed (every one outside an explicit
// transaction is a transaction of its own, so this bounds their transactions from above) and
// the CPU time of their server processes (the kernel's count for each backend,
// /proc/PID/schedstat: the server runs on this machine). pg_stat_database would lag: a backend inside a long statement
// reports the transactions before it only when the statement ends.

// waitSettle is how long after the slow statement starts the window opens, and how long
// before it ends the window closes: the herd's start-up and the wake-up stay outside.
const waitSettle = 3 * time.Second

// waitCost is what one run measured.
type waitCost struct {
	waiters    int
	window     time.Duration
	statements int64         // the waiters completed in the window (≥ their transactions)
	cpu        time.Duration // of the waiters' backends in the window
	// What the waiters' start-up cost, from each one's start to the window's opening (their
	// waiting until then is a few milliseconds of it): the CPU of their own processes, and of
	// their backends (a connection's start and the replica's first statements).
	startupClient, startupServer time.Duration
	// What a bare connection (connect, SELECT 1) costs its backend on the same server: the part
	// of startupServer no client can avoid.
	bareServer time.Duration
}

// perWaiterPerSecond is the statements per second of one waiting replica.
func (w waitCost) perWaiterPerSecond() float64 {
	return float64(w.statements) / float64(w.waiters) / w.window.Seconds()
}

// cpuPerWaiterPerMinute is the server CPU one waiting replica costs a minute.
func (w waitCost) cpuPerWaiterPerMinute() time.Duration {
	return time.Duration(float64(w.cpu) / float64(w.waiters) * (time.Minute.Seconds() / w.window.Seconds()))
}

// compareWaitCost measures the waiting cost of c with -wait-herd replicas and fills its rows.
func (b *bench) compareWaitCost(ctx context.Context, g *grid, c contender, dir string) error {
	n := b.opts.waitHerd
	if n < 2 || b.opts.cutSleep < 3*waitSettle {
		return nil
	}
	row := func(what string) string {
		return fmt.Sprintf("waiting, herd of %d, %s window: %s", n, (b.opts.cutSleep - 2*waitSettle).Round(time.Second), what)
	}
	w, err := b.waitCostOnce(ctx, c, dir, n)
	if err != nil {
		g.set(row("statements (≥ transactions) per second per waiting replica"), c.name, "failed: "+err.Error())
		return nil
	}
	g.set(row("statements (≥ transactions) per second per waiting replica"), c.name, fmt.Sprintf("%.3f", w.perWaiterPerSecond()))
	g.set(row("server CPU per waiting replica, per minute"), c.name, millis(w.cpuPerWaiterPerMinute()))
	g.set(row("statements per second, all waiters"), c.name, fmt.Sprintf("%.2f", float64(w.statements)/w.window.Seconds()))
	per := func(d time.Duration) string { return millis(d / time.Duration(w.waiters)) }
	g.set(fmt.Sprintf("start-up of a waiting replica (herd of %d): CPU of its process / of its backend", n), c.name,
		per(w.startupClient)+" / "+per(w.startupServer))
	g.set("a bare connection's backend (connect, SELECT 1): CPU", c.name, millis(w.bareServer))
	return nil
}

// waitCostOnce runs n replicas of c on dir once, on a server of their own, and measures the
// window.
func (b *bench) waitCostOnce(ctx context.Context, c contender, dir string, n int) (waitCost, error) {
	srv, err := pgscratch.StartServer(ctx, pgscratch.ServerOptions{DirPrefix: "sgwait-", Settings: []string{
		fmt.Sprintf("max_connections = %d", n+20),
		"log_min_duration_statement = 0",
		"log_line_prefix = '%m|%a|'",
	}})
	if err != nil {
		return waitCost{}, err
	}
	defer srv.Remove()
	d, err := newDatabase(ctx, srv.AdminURL())
	if err != nil {
		return waitCost{}, err
	}
	defer d.drop(ctx)
	admin, err := pgx.Connect(ctx, srv.AdminURL())
	if err != nil {
		return waitCost{}, err
	}
	defer admin.Close(ctx)
	rs, err := c.start(d, dir, "w", n)
	if err != nil {
		return waitCost{}, err
	}
	defer stopAll(rs)
	holder, _, err := waitForSlowStatement(ctx, d, c.app)
	if err != nil {
		return waitCost{}, err
	}
	slept := time.Now()
	time.Sleep(waitSettle)
	pids, err := waiterBackends(ctx, admin, d.name, c.app, holder)
	if err != nil {
		return waitCost{}, err
	}
	cpu0, opened := backendCPU(pids), time.Now()
	var clients []int
	for _, r := range rs {
		if pid, err := r.PID(); err == nil && c.app+r.Name != holder {
			clients = append(clients, pid)
		}
	}
	startupClient := processCPU(clients)
	bare, err := bareConnectionCPU(ctx, admin, d.url)
	if err != nil {
		return waitCost{}, err
	}
	time.Sleep(time.Until(slept.Add(b.opts.cutSleep - waitSettle)))
	cpu1, closed := backendCPU(pids), time.Now()
	statements := statementsCompleted(srv.Log(), c.app, holder, opened, closed)
	return waitCost{waiters: n - 1, window: closed.Sub(opened), statements: statements, cpu: cpu1 - cpu0,
		startupClient: startupClient, startupServer: cpu0, bareServer: bare}, nil
}

// bareConnectionCPU opens a connection to url, runs SELECT 1, and returns the CPU its backend
// has used by then: the server's fixed cost of a connection on this machine.
func bareConnectionCPU(ctx context.Context, admin *pgx.Conn, url string) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid() FROM (SELECT 1) one").Scan(&pid); err != nil {
		return 0, err
	}
	return backendCPU([]int{pid}), nil
}

// statementsCompleted counts, in a server log written with log_min_duration_statement = 0 and
// log_line_prefix '%m|%a|', the statements that sessions named with prefix, other than holder,
// completed between from and to. An extended-protocol statement logs its parse, bind and
// execute steps: only the execute counts.
func statementsCompleted(log, prefix, holder string, from, to time.Time) int64 {
	var n int64
	for _, line := range strings.Split(log, "\n") {
		stamp, rest, ok := strings.Cut(line, "|")
		if !ok {
			continue
		}
		app, msg, ok := strings.Cut(rest, "|")
		if !ok || !strings.HasPrefix(app, prefix) || app == holder || !strings.Contains(msg, "duration: ") {
			continue
		}
		if !strings.Contains(msg, " statement: ") && !strings.Contains(msg, " execute ") {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05.000 MST", stamp)
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		n++
	}
	return n
}

// waiterBackends lists the server processes of the replicas of the database, except the
// holder's.
func waiterBackends(ctx context.Context, admin *pgx.Conn, name, prefix, holder string) ([]int, error) {
	rows, err := admin.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = $1 AND starts_with(application_name, $2) AND application_name <> $3`, name, prefix, holder)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// processCPU sums the CPU time of every thread of the processes pids (threads that have ended
// do not count: a Go process keeps the threads it started).
func processCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			continue
		}
		for _, e := range entries {
			total += schedstat(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, e.Name()))
		}
	}
	return total
}

// backendCPU sums the CPU time the processes pids ran (gone ones count zero), from
// /proc/PID/schedstat: the scheduler's own count in nanoseconds. /proc/PID/stat would do
// worse: it samples at each 10 ms tick whom the CPU runs, and a waiting backend wakes for
// microseconds at a time.
func backendCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		total += schedstat(fmt.Sprintf("/proc/%d/schedstat", pid))
	}
	return total
}

// schedstat reads the CPU time of one task from its schedstat file (0 when it is gone).
func schedstat(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	ns, _ := strconv.ParseInt(fields[0], 10, 64)
	return time.Duration(ns)
}
