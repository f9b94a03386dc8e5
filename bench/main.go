// Command bench measures schemagate on this machine, every figure against a baseline measured in
// the same run: a herd of replicas against one replica alone, how fast waiters wake after the
// final commit, how long failover takes after a SIGKILL and after a network blackhole, and how
// many connections a waiting replica holds. The compare scenario runs goose and golang-migrate
// through the same scenarios, side by side with schemagate.
//
//	cd bench && go run .            # or: make bench
//	go run . -runs 5 -scenarios herd,failover
//	go run . -scenarios compare -peers pglock,goose,migrate
//	go run . -scenarios fleet -fleet-baseline 9f8b55a -scratch-connections 300
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgscratch"
)

type options struct {
	adminURL  string
	runs      int
	herds     []int
	slow      time.Duration
	scenarios []string
	peers     []string      // contenders of the compare scenario
	bound     time.Duration // most one compare configuration may take
	cutSleep  time.Duration // first-attempt sleep of the migration the compare scenario cuts off
	// compareParts are the parts of the compare scenario to run: herd, kill, blackhole, wait.
	compareParts []string
	// waitHerd is how many replicas the waiting-cost part starts.
	waitHerd int
	// fleetBaseline is a revision built without presence, for the fleet scenario; "" for none.
	fleetBaseline string
	// scratchConnections, when set, runs everything on a throwaway server accepting that many.
	scratchConnections int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	var herds, scenarios string
	fs.StringVar(&o.adminURL, "database-url", adminURL(), "maintenance database of the server to benchmark against")
	fs.IntVar(&o.runs, "runs", 3, "repetitions of each measurement; the median is reported")
	fs.StringVar(&herds, "herd", "20,100", "herd sizes")
	fs.DurationVar(&o.slow, "slow", 3*time.Second, "how long the slow migration sleeps")
	var peers string
	fs.StringVar(&scenarios, "scenarios", "herd,failover,serve,raft",
		"herd (ratio, wake-up, connections), failover (SIGKILL, blackhole), serve (idle memory, CPU, probe latency), raft (herd, election, sessions, failover), "+
			"compare (side by side with goose and golang-migrate; not in the default), "+
			"fleet (the herd with presence and --same-env, against -fleet-baseline; not in the default)")
	fs.StringVar(&o.fleetBaseline, "fleet-baseline", "", "fleet: a git revision built without presence, run as the baseline "+
		"(the last before it: 9f8b55a)")
	fs.IntVar(&o.scratchConnections, "scratch-connections", 0, "run on a throwaway PostgreSQL server (pg_config --bindir) "+
		"that accepts this many connections, instead of -database-url: for herds the shared server cannot hold")
	fs.StringVar(&peers, "peers", "pglock,raft,goose,migrate,goose-nolock", "tools of the compare scenario")
	fs.DurationVar(&o.bound, "bound", 3*time.Minute, "compare: most one run of a configuration may take before it is reported as timed out")
	fs.DurationVar(&o.cutSleep, "cut-sleep", 30*time.Second, "compare: how long the migration cut off sleeps on its first attempt "+
		"(and the waiting-cost part waits for)")
	var parts string
	fs.StringVar(&parts, "compare", "herd,kill,blackhole,wait", "compare: which parts to run")
	fs.IntVar(&o.waitHerd, "wait-herd", 20, "compare: replicas of the waiting-cost part")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, h := range strings.Split(herds, ",") {
		var n int
		if _, err := fmt.Sscan(h, &n); err != nil || n < 2 {
			return fmt.Errorf("-herd: %q is not a size of at least 2", h)
		}
		o.herds = append(o.herds, n)
	}
	o.scenarios = strings.Split(scenarios, ",")
	o.compareParts = strings.Split(parts, ",")
	o.peers = strings.Split(peers, ",")

	work, err := os.MkdirTemp("", "schemagate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := fleet.Build("..", work)
	if err != nil {
		return err
	}
	b := &bench{opts: o, bin: bin, work: work}
	if o.scratchConnections > 0 {
		srv, err := pgscratch.StartServer(ctx, pgscratch.ServerOptions{DirPrefix: "sgbench-",
			Settings: []string{fmt.Sprintf("max_connections = %d", o.scratchConnections)}})
		if err != nil {
			return err
		}
		defer srv.Remove()
		b.opts.adminURL = srv.AdminURL()
	}
	if err := b.describeMachine(ctx); err != nil {
		return err
	}
	if slices.Contains(o.scenarios, "herd") {
		if err := b.herds(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "failover") {
		if err := b.failovers(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "serve") {
		if err := b.serveIdle(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "raft") {
		if err := b.rafts(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "fleet") {
		if err := b.fleets(ctx); err != nil {
			return err
		}
	}
	if slices.Contains(o.scenarios, "compare") {
		if err := b.compare(ctx); err != nil {
			return err
		}
	}
	b.print(os.Stdout)
	return nil
}

func adminURL() string {
	if u := os.Getenv("SCHEMAGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// bench holds one run's settings and results.
type bench struct {
	opts    options
	bin     string
	work    string
	machine string
	rows    []row
	grid    *grid // the compare scenario's table
}

// row is one line of the result table.
type row struct {
	name, value, target string
}

func (b *bench) add(name, value, target string) {
	b.rows = append(b.rows, row{name, value, target})
	fmt.Fprintf(os.Stderr, "  %-52s %s\n", name, value)
}

func (b *bench) print(w *os.File) {
	fmt.Fprintf(w, "\n%s\n\n", b.machine)
	if len(b.rows) > 0 {
		fmt.Fprintf(w, "| measurement | result | target |\n|---|---|---|\n")
		for _, r := range b.rows {
			fmt.Fprintf(w, "| %s | %s | %s |\n", r.name, r.value, r.target)
		}
	}
	if b.grid != nil {
		fmt.Fprintln(w)
		b.grid.print(w)
	}
}

// migrationDir writes a set into a fresh directory under the work dir.
func (b *bench) migrationDir(name string, set fleet.MigrationSet) (string, error) {
	dir := filepath.Join(b.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, set.Write(dir)
}

func (b *bench) describeMachine(ctx context.Context) error {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GiB", float64(kb)/1024/1024)
	}
	version, err := serverVersion(ctx, b.opts.adminURL)
	if err != nil {
		return err
	}
	b.machine = fmt.Sprintf("%s — %d cores (%s)%s, %s, %s, %d runs per figure (median)",
		time.Now().Format(time.DateOnly), runtime.NumCPU(), cpu, mem, version, runtime.Version(), b.opts.runs)
	fmt.Fprintln(os.Stderr, b.machine)
	return nil
}
