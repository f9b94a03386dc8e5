// Command soak runs randomized rollouts against real processes and checks schemagate's
// invariants after each: R rounds, each of a random number of replicas (5–50) started at once
// on a fresh database, migrating with goose or with a migrate command of their own (a shell
// script running psql, as a foreign tool would), with a random fault injected at a random
// moment of the migration.
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
	"os/exec"
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

// faults are what a round can inject into its rollout. blackhole-migrator drops the packets of
// the migrator's sessions (its own and its command's) for a while; it needs root and iptables,
// and is left out where they are missing.
var faults = []string{"none", "kill-migrator", "stop-migrator", "term-migrator", "terminate-backend", "kill-waiter",
	"failing-migration", "blackhole-migrator"}

// engines are how a round's replicas migrate.
var engines = []string{"goose", "command"}

// blackholeFor is how long a blackhole-migrator round keeps the migrator cut off, unless the
// others finish first.
const blackholeFor = 30 * time.Second

type options struct {
	rounds     int
	seed       uint64
	minN, maxN int
	adminURL   string
	moduleDir  string
	// fault and engine, when set, fix every round's fault and engine (to repeat one kind).
	fault, engine string
	// keep, when set, is a directory the outputs of failed rounds' replicas are written to.
	keep string
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
	flag.StringVar(&o.fault, "fault", "", "give every round this fault (one of "+strings.Join(faults, ", ")+")")
	flag.StringVar(&o.engine, "engine", "", "give every round this engine (goose or command)")
	flag.StringVar(&o.keep, "keep", "", "write the replicas' outputs of every failed round to this directory")
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
	available := faults
	if _, err := exec.LookPath("iptables"); err != nil || os.Geteuid() != 0 {
		available = slices.DeleteFunc(slices.Clone(faults), func(f string) bool { return f == "blackhole-migrator" })
		fmt.Fprintln(out, "soak: no blackhole-migrator rounds: dropping packets needs root and iptables")
	}
	s := &summary{byFault: map[string]*faultStats{}}
	for i := range o.rounds {
		if ctx.Err() != nil {
			break
		}
		r := round{n: o.minN + rng.IntN(o.maxN-o.minN+1), fault: available[rng.IntN(len(available))],
			moment: rng.IntN(migrations - 1), failAt: 2 + rng.IntN(migrations-1), engine: engines[rng.IntN(len(engines))],
			keep: o.keep}
		if o.fault != "" {
			r.fault = o.fault
		}
		if o.engine != "" {
			r.engine = o.engine
		}
		begin := time.Now()
		problems, err := r.run(ctx, bin, work, o.adminURL, i)
		if err != nil {
			problems = append(problems, err.Error())
		}
		took := time.Since(begin)
		if o.keep != "" && took > 20*time.Second && len(problems) == 0 {
			os.Rename(filepath.Join(work, "last-round"), filepath.Join(o.keep, fmt.Sprintf("slow-round-%d", i)))
		}
		key := r.engine + " " + r.fault
		fs := s.byFault[key]
		if fs == nil {
			fs = &faultStats{}
			s.byFault[key] = fs
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
	fmt.Fprintf(out, "\n| engine and fault | rounds | failed | median | max |\n|---|---|---|---|---|\n")
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

// round is one rollout: n replicas migrating with engine, a fault, and the moment it strikes
// (after that many migrations were applied). failAt is the failing migration of a
// failing-migration round.
type round struct {
	n, moment, failAt int
	fault, engine     string
	keep              string // where to write a failed round's outputs
}

func (r round) String() string {
	switch r.fault {
	case "none":
		return fmt.Sprintf("n=%d %s none", r.n, r.engine)
	case "failing-migration":
		return fmt.Sprintf("n=%d %s failing-migration at %d", r.n, r.engine, r.failAt)
	}
	return fmt.Sprintf("n=%d %s %s after %d", r.n, r.engine, r.fault, r.moment)
}

// commandScript is the migrate command of the command engine's rounds: a tool of the app's own
// that reads the version, then applies each next migration in a transaction of its own with
// its version row, as Alembic, golang-migrate or Flyway do. Nothing in the database stops two
// copies of it from applying a migration twice (applied_log and versions have no unique key):
// only schemagate's fencing does. It fails at $FAIL_AT, if set, after the earlier ones.
const commandScript = `set -e
v=$(( $(psql -X -qAt -c "SELECT coalesce(max(v), 0) FROM versions" "$DATABASE_URL") + 1 ))
while [ "$v" -le %d ]; do
  fail=""
  [ "$v" = "${FAIL_AT:-0}" ] && fail="SELECT 1/0;"
  psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<SQL
BEGIN;
SELECT pg_sleep(0.15);
INSERT INTO applied_log (version, replica) VALUES ($v, current_setting('application_name'));
INSERT INTO versions VALUES ($v);
$fail
COMMIT;
SQL
  v=$((v + 1))
done
`

// gateArgs are a round's command line and environment.
func (r round) gateArgs(db *database, dir string) ([]string, []string, error) {
	args := []string{"migrate", "--database-url", db.url, "--timeout", "2m"}
	if r.engine == "goose" {
		return append(args, "--dir", dir), nil, nil
	}
	if _, err := db.conn.Exec(context.Background(),
		"CREATE TABLE applied_log (version int, replica text, at timestamptz DEFAULT clock_timestamp()); CREATE TABLE versions (v int)"); err != nil {
		return nil, nil, err
	}
	script := filepath.Join(dir, "migrate.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(commandScript, migrations)), 0o644); err != nil {
		return nil, nil, err
	}
	env := []string{"DATABASE_URL=" + db.url}
	if r.fault == "failing-migration" {
		env = append(env, fmt.Sprintf("FAIL_AT=%d", r.failAt))
	}
	return append(args, "--engine", "command", "--version-source", "sql",
		"--version-query", "SELECT coalesce(max(v), 0) FROM versions", "--target-version", fmt.Sprint(migrations),
		"--migrate-command", "sh "+script), env, nil
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
	args, env, err := r.gateArgs(db, dir)
	if err != nil {
		return nil, err
	}
	rs, err := fleet.StartAll(bin, r.n, "soak", args, env...)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, rep := range rs {
			rep.Stop()
		}
	}()
	hit, heal, err := r.inject(ctx, db, rs)
	if err != nil {
		return nil, err
	}
	if heal != nil {
		// Cut off: the others take over and finish; then the network comes back.
		deadline := time.Now().Add(blackholeFor)
		for time.Now().Before(deadline) && !allDone(slices.DeleteFunc(slices.Clone(rs), func(x *fleet.Replica) bool { return x == hit })) {
			time.Sleep(20 * time.Millisecond)
		}
		if err := heal(); err != nil {
			return nil, err
		}
	}
	for _, rep := range rs {
		if _, err := rep.Wait(3 * time.Minute); err != nil {
			return nil, err
		}
	}
	problems := r.check(ctx, db, rs, hit)
	if r.keep != "" {
		dir := filepath.Join(r.keep, fmt.Sprintf("round-%d", i))
		if len(problems) == 0 {
			dir = filepath.Join(work, "last-round")
			os.RemoveAll(dir)
		}
		if err := os.MkdirAll(dir, 0o755); err == nil {
			for _, rep := range rs {
				os.WriteFile(filepath.Join(dir, rep.Name+".log"), []byte(rep.Output()), 0o644)
			}
		}
	}
	return problems, nil
}

// inject waits for the moment and strikes; it returns the replica it hit, if any, and for a
// blackhole the function that heals it.
func (r round) inject(ctx context.Context, db *database, rs []*fleet.Replica) (*fleet.Replica, func() error, error) {
	hit, err := r.strike(ctx, db, rs)
	if err != nil || r.fault != "blackhole-migrator" || hit == nil {
		return hit, nil, err
	}
	heal, err := cutOff(ctx, db, hit.Name)
	return hit, heal, err
}

// cutOff drops the packets of every session of replica (its own and its migrate command's).
func cutOff(ctx context.Context, db *database, replica string) (func() error, error) {
	rows, err := db.conn.Query(ctx, `SELECT client_port FROM pg_stat_activity
		WHERE application_name IN ($1, $1 || '/command') AND client_port > 0`, "schemagate/"+replica)
	if err != nil {
		return nil, err
	}
	ports, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	var heals []func() error
	heal := func() error {
		var errs []error
		for _, h := range heals {
			errs = append(errs, h())
		}
		return errors.Join(errs...)
	}
	for _, port := range ports {
		h, err := fleet.Blackhole(int(port))
		if err != nil {
			heal()
			return nil, err
		}
		heals = append(heals, h)
	}
	return heal, nil
}

// strike waits for the moment and strikes; it returns the replica it hit, if any.
func (r round) strike(ctx context.Context, db *database, rs []*fleet.Replica) (*fleet.Replica, error) {
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
			case "blackhole-migrator":
				return victim, nil // inject cuts it off
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
	versions := "SELECT %s FROM goose_db_version WHERE version_id > 0"
	if r.engine == "command" {
		versions = "SELECT %s FROM versions"
	}
	if got, _ := db.count(ctx, fmt.Sprintf(versions, "count(DISTINCT version_id)")); r.engine == "goose" && got != want {
		fail("version table holds %d versions, want %d", got, want)
	}
	if got, _ := db.count(ctx, fmt.Sprintf(versions, "count(*)")); got != want {
		fail("version table has %d rows, want %d", got, want)
	}
	if got, _ := db.count(ctx, "SELECT count(DISTINCT version) FROM applied_log"); got != want {
		fail("applied_log holds %d migrations, want %d", got, want)
	}
	if running, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'running'"); running != 0 {
		fail("%d runs left running in the journal", running)
	}
	succeeded, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'succeeded'")
	failed, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome = 'failed'")
	cutOff, _ := db.count(ctx, "SELECT count(*) FROM schemagate_journal WHERE kind = 'run' AND outcome IN ('lost', 'abandoned')")
	switch {
	case r.fault == "failing-migration" && (succeeded != 0 || failed < 1):
		// Usually one failed run. A replica whose first read came after the failure (the last
		// of a large herd to start, on a busy machine) retries once, as a restart does.
		fail("journal: %d succeeded, %d failed runs; want the failure", succeeded, failed)
	case r.fault != "failing-migration" && succeeded == 0 && cutOff > 0 && r.engine == "command":
		// A migrate command may finish its work while its migrator, cut off, can no longer
		// confirm it: the run is journaled lost, truthfully, and the others find the schema
		// ready without a run of their own. The version checks above hold it to account.
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
