// Command soak runs randomized rollouts against real processes and checks schemagate's
// invariants after each: R rounds, each of a random number of replicas (5–50) started at once
// on a fresh database, with a random fault injected at a random moment of the migration.
//
//	go run ./internal/soak -rounds 200          # make soak
//	go run ./internal/soak -rounds 5 -seed 42   # reproduce a round's sequence
//
// After every round: no migration applied twice; the version table holds exactly what should
// be there; every replica that was not hit exited with the right code; the journal shows one
// successful run (or the failure) and no run left "running"; no output contains the database
// password. The summary prints per fault how many rounds ran, failed, and how long they took.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/schemagate/schemagate/internal/fleet"
	"github.com/schemagate/schemagate/internal/pgscratch"
)

// password is put into every replica's database URL; no output may contain it.
const password = "soak-pw-3e9a0c7b1d"

const migrations = 8

// faults are what a round can inject into its rollout.
var faults = []string{"none", "kill-migrator", "stop-migrator", "term-migrator", "terminate-backend", "kill-waiter", "failing-migration"}

type options struct {
	rounds     int
	seed       uint64
	minN, maxN int
	adminURL   string
	moduleDir  string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var o options
	flag.IntVar(&o.rounds, "rounds", 20, "rounds to run")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "random seed (printed; pass it to repeat a run)")
	flag.IntVar(&o.minN, "min", 5, "fewest replicas in a round")
	flag.IntVar(&o.maxN, "max", 50, "most replicas in a round")
	flag.StringVar(&o.adminURL, "database-url", adminURL(), "maintenance database of the server; each round creates and drops its own")
	flag.StringVar(&o.moduleDir, "module", ".", "directory of the schemagate module to build")
	flag.Parse()
	s, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if s.failed > 0 {
		os.Exit(1)
	}
}

func adminURL() string {
	if u := os.Getenv("SCHEMAGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// summary is what a run found.
type summary struct {
	rounds, failed int
	byFault        map[string]*faultStats
	problems       []string
}

type faultStats struct {
	rounds, failed int
	took           []time.Duration
}

// run builds the binary and runs o.rounds rounds, printing one line per round and a summary.
func run(ctx context.Context, o options, out *os.File) (*summary, error) {
	work, err := os.MkdirTemp("", "schemagate-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	bin, err := fleet.Build(o.moduleDir, work)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15))
	fmt.Fprintf(out, "soak: %d rounds, %d–%d replicas, seed %d\n", o.rounds, o.minN, o.maxN, o.seed)
	s := &summary{byFault: map[string]*faultStats{}}
	for i := range o.rounds {
		if ctx.Err() != nil {
			break
		}
		r := round{n: o.minN + rng.IntN(o.maxN-o.minN+1), fault: faults[rng.IntN(len(faults))],
			moment: rng.IntN(migrations - 1), failAt: 2 + rng.IntN(migrations-1)}
		begin := time.Now()
		problems, err := r.run(ctx, bin, work, o.adminURL, i)
		if err != nil {
			problems = append(problems, err.Error())
		}
		took := time.Since(begin)
		fs := s.byFault[r.fault]
		if fs == nil {
			fs = &faultStats{}
			s.byFault[r.fault] = fs
		}
		fs.rounds++
		fs.took = append(fs.took, took)
		s.rounds++
		verdict := "ok"
		if len(problems) > 0 {
			fs.failed++
			s.failed++
			verdict = "FAILED: " + strings.Join(problems, "; ")
			s.problems = append(s.problems, fmt.Sprintf("round %d (%s): %s", i+1, r, strings.Join(problems, "; ")))
		}
		fmt.Fprintf(out, "round %3d  %-48s %6.1fs  %s\n", i+1, r.String(), took.Seconds(), verdict)
	}
	s.print(out)
	return s, nil
}

func (s *summary) print(out *os.File) {
	fmt.Fprintf(out, "\n| fault | rounds | failed | median | max |\n|---|---|---|---|---|\n")
	names := make([]string, 0, len(s.byFault))
	for name := range s.byFault {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fs := s.byFault[name]
		slices.Sort(fs.took)
		fmt.Fprintf(out, "| %s | %d | %d | %.1f s | %.1f s |\n", name, fs.rounds, fs.failed,
			fs.took[len(fs.took)/2].Seconds(), fs.took[len(fs.took)-1].Seconds())
	}
	fmt.Fprintf(out, "\n%d rounds, %d failed\n", s.rounds, s.failed)
	for _, p := range s.problems {
		fmt.Fprintln(out, "  "+p)
	}
}

// round is one rollout: n replicas, a fault, and the moment it strikes (after that many
// migrations were applied). failAt is the failing migration of a failing-migration round.
type round struct {
	n, moment, failAt int
	fault             string
}

func (r round) String() string {
	switch r.fault {
	case "none":
		return fmt.Sprintf("n=%d none", r.n)
	case "failing-migration":
		return fmt.Sprintf("n=%d failing-migration at %d", r.n, r.failAt)
	}
	return fmt.Sprintf("n=%d %s after %d", r.n, r.fault, r.moment)
}

func (r round) run(ctx context.Context, bin, work, admin string, i int) ([]string, error) {
	db, err := createDatabase(ctx, admin, fmt.Sprintf("soak_%d_", i))
	if err != nil {
		return nil, err
	}
	defer db.drop()
	set := fleet.MigrationSet{N: migrations, Slow: map[int]float64{}}
	for v := 1; v <= migrations; v++ {
		set.Slow[v] = 0.15
	}
	if r.fault == "failing-migration" {
		set.Fail = map[int]bool{r.failAt: true}
	}
	dir := filepath.Join(work, fmt.Sprintf("round-%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := set.Write(dir); err != nil {
		return nil, err
	}
	rs, err := fleet.StartAll(bin, r.n, "soak", []string{"migrate", "--database-url", db.url, "--dir", dir, "--timeout", "2m"})
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, rep := range rs {
			rep.Stop()
		}
	}()
	hit, err := r.inject(ctx, db, rs)
	if err != nil {
		return nil, err
	}
	for _, rep := range rs {
		if _, err := rep.Wait(3 * time.Minute); err != nil {
			return nil, err
		}
	}
	return r.check(ctx, db, rs, hit), nil
}

// inject waits for the moment and strikes; it returns the replica it hit, if any.
func (r round) inject(ctx context.Context, db *database, rs []*fleet.Replica) (*fleet.Replica, error) {
	if r.fault == "none" || r.fault == "failing-migration" {
		return nil, nil
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if time.Now().After(deadline) {
			return nil, errors.New("the moment to inject never came")
		}
		applied, _ := db.count(ctx, "SELECT count(*) FROM applied_log")
		holder, pid, _ := db.holder(ctx)
		if holder != "" && applied >= int64(r.moment) {
			var victim *fleet.Replica
			for _, rep := range rs {
				if "schemagate/"+rep.Name == holder {
					victim = rep
				}
			}
			if victim == nil {
				return nil, fmt.Errorf("no replica is %s", holder)
			}
			switch r.fault {
			case "kill-migrator":
				return victim, victim.Signal(syscall.SIGKILL)
			case "term-migrator":
				return victim, victim.Signal(syscall.SIGTERM)
			case "stop-migrator":
				if err := victim.Signal(syscall.SIGSTOP); err != nil {
					return nil, err
				}
				time.Sleep(time.Second) // the fault itself: frozen for a second
				return nil, victim.Signal(syscall.SIGCONT)
			case "terminate-backend":
				_, err := db.conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
				return nil, err
			case "kill-waiter":
				for _, rep := range rs {
					if rep != victim && rep.ExitedAt().IsZero() {
						return rep, rep.Signal(syscall.SIGKILL)
					}
				}
				return nil, nil
			}
		}
		if allDone(rs) {
			return nil, nil // finished before the moment: nothing left to hit
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allDone(rs []*fleet.Replica) bool {
	for _, r := range rs {
		if r.ExitedAt().IsZero() {
			return false
		}
	}
	return true
}

// check verifies the invariants after every replica ended.
func (r round) check(ctx context.Context, db *database, rs []*fleet.Replica, hit *fleet.Replica) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if dup, _ := db.count(ctx, "SELECT count(*) FROM (SELECT version FROM applied_log GROUP BY version HAVING count(*) > 1) d"); dup != 0 {
		fail("%d migrations applied twice", dup)
	}
	want := int64(migrations)
	if r.fault == "failing-migration" {
		want = int64(r.failAt - 1)
	}
	if got, _ := db.count(ctx, "SELECT count(DISTINCT version_id) FROM goose_db_version WHERE version_id > 0"); got != want {
		fail("version table holds %d versions, want %d", got, want)
	}
	if got, _ := db.count(ctx, "SELECT count(*) FROM goose_db_version WHERE version_id > 0"); got != want {
		fail("version table has %d rows, want %d", got, want)
	}
	if running, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'running'"); running != 0 {
		fail("%d runs left running in the journal", running)
	}
	succeeded, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'")
	failed, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'failed'")
	switch {
	case r.fault == "failing-migration" && (succeeded != 0 || failed != 1):
		fail("journal: %d succeeded, %d failed runs; want the one failure", succeeded, failed)
	case r.fault != "failing-migration" && succeeded != 1:
		fail("journal: %d succeeded runs, want 1", succeeded)
	}
	for _, rep := range rs {
		code, _ := rep.Wait(time.Minute) // it has ended: returns at once
		out := rep.Output()
		if strings.Contains(out, password) {
			fail("%s printed the database password", rep.Name)
		}
		switch {
		case rep == hit && (r.fault == "kill-migrator" || r.fault == "kill-waiter"):
			if code != -1 {
				fail("%s was killed but exited %d: %s", rep.Name, code, lastLine(out))
			}
		case rep == hit && r.fault == "term-migrator":
			if code != 4 {
				fail("%s got SIGTERM mid-migration and exited %d, want 4: %s", rep.Name, code, lastLine(out))
			}
		case r.fault == "failing-migration":
			if code != 3 {
				fail("%s exited %d after a failed migration, want 3", rep.Name, code)
			}
		default:
			if code != 0 {
				fail("%s exited %d, want 0: %s", rep.Name, code, lastLine(out))
			}
		}
	}
	return problems
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// database is a round's own database on the server.
type database struct {
	url   string
	name  string
	admin string
	conn  *pgx.Conn
}

func createDatabase(ctx context.Context, admin, prefix string) (*database, error) {
	name, err := pgscratch.CreateDatabase(ctx, admin, prefix)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(pgscratch.WithDatabase(admin, name))
	if err != nil {
		return nil, err
	}
	u.User = url.UserPassword(u.User.Username(), password) // trust auth ignores it; outputs are searched for it
	d := &database{url: u.String(), name: name, admin: admin}
	if d.conn, err = pgx.Connect(ctx, d.url); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

func (d *database) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if d.conn != nil {
		d.conn.Close(ctx)
	}
	_ = pgscratch.DropDatabase(ctx, d.admin, d.name)
}

func (d *database) count(ctx context.Context, q string) (int64, error) {
	var n int64
	err := d.conn.QueryRow(ctx, q).Scan(&n)
	return n, err
}

// holder is the replica holding the advisory lock, and its backend pid.
func (d *database) holder(ctx context.Context) (string, int, error) {
	var name string
	var pid int
	err := d.conn.QueryRow(ctx, `SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock' AND a.datname = current_database()
		AND a.application_name LIKE 'schemagate/%' LIMIT 1`).Scan(&name, &pid)
	return name, pid, err
}
