package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// contender is one tool of the side-by-side comparison: how to start n replicas of it, each a
// process of its own, and how to read them.
type contender struct {
	name    string // column heading
	key     string // -peers name
	app     string // application_name prefix of its replicas' sessions
	ready   string // the log message a replica writes when the schema is ready
	migrate bool   // writes golang-migrate files instead of goose files
	cut     bool   // has one migrator to cut off (kill and blackhole scenarios)
	start   func(d *database, dir, prefix string, n int) ([]*fleet.Replica, error)
}

// contenders returns the tools of the comparison, in column order, keeping those named in
// -peers.
func (b *bench) contenders() ([]contender, error) {
	goosePeer, migratePeer, err := buildPeers(b.work)
	if err != nil {
		return nil, err
	}
	sgArgs := func(d *database, dir string) []string {
		return []string{"migrate", "--database-url", d.url, "--dir", dir}
	}
	peerArgs := func(d *database, dir string, extra ...string) []string {
		return append([]string{"-database-url", d.url, "-dir", dir}, extra...)
	}
	all := []contender{
		{name: "schemagate (pg lock)", key: "pglock", app: "schemagate/", ready: "schema ready", cut: true,
			start: func(d *database, dir, prefix string, n int) ([]*fleet.Replica, error) {
				return fleet.StartAll(b.bin, n, prefix, sgArgs(d, dir))
			}},
		{name: "schemagate (raft)", key: "raft", app: "schemagate/", ready: "schema ready", cut: true,
			start: func(d *database, dir, prefix string, n int) ([]*fleet.Replica, error) {
				f, err := newRaftFleet(n)
				if err != nil {
					return nil, err
				}
				return f.start(b.bin, prefix, sgArgs(d, dir))
			}},
		{name: "goose Provider + session locker", key: "goose", app: "goose/", ready: "ready", cut: true,
			start: func(d *database, dir, prefix string, n int) ([]*fleet.Replica, error) {
				return fleet.StartAll(goosePeer, n, prefix, peerArgs(d, dir, "-lock", "session"))
			}},
		{name: "golang-migrate v4 (pgx5)", key: "migrate", app: "migrate/", ready: "ready", migrate: true, cut: true,
			start: func(d *database, dir, prefix string, n int) ([]*fleet.Replica, error) {
				return fleet.StartAll(migratePeer, n, prefix, peerArgs(d, dir))
			}},
		{name: "goose Provider, no lock", key: "goose-nolock", app: "goose/", ready: "ready",
			start: func(d *database, dir, prefix string, n int) ([]*fleet.Replica, error) {
				return fleet.StartAll(goosePeer, n, prefix, peerArgs(d, dir, "-lock", "none"))
			}},
	}
	var keep []contender
	for _, c := range all {
		if slices.Contains(b.opts.peers, c.key) {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("-peers: none of %q is pglock, raft, goose, migrate or goose-nolock", b.opts.peers)
	}
	return keep, nil
}

// buildPeers compiles the goose and golang-migrate peer replicas into dir.
func buildPeers(dir string) (goosePeer, migratePeer string, err error) {
	goosePeer, migratePeer = filepath.Join(dir, "goosepeer"), filepath.Join(dir, "migratepeer")
	for bin, pkg := range map[string]string{goosePeer: "./peers/goosepeer", migratePeer: "./peers/migratepeer"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("build %s: %w\n%s", pkg, err, out)
		}
	}
	return goosePeer, migratePeer, nil
}

// compare runs every contender through the same scenarios on the same migration sets: one
// replica alone (the baseline), herds, and a migrator cut off by SIGKILL and by a blackhole.
func (b *bench) compare(ctx context.Context) error {
	cs, err := b.contenders()
	if err != nil {
		return err
	}
	cutSet := fleet.MigrationSet{N: 20, FirstSlow: map[int]float64{10: b.opts.cutSleep.Seconds()}}
	g := newGrid()
	floors, exitCost := map[int]string{}, ""
	if slices.Contains(b.opts.compareParts, "herd") {
		for _, n := range b.opts.herds {
			ds, err := b.wakeFloor(ctx, n, b.opts.runs)
			if err != nil {
				return fmt.Errorf("the wake-up floor of %d: %w", n, err)
			}
			floors[n] = millis(percentile(ds, 50)) + " / " + millis(percentile(ds, 99))
		}
		if exit, err := b.backendExitCost(ctx, 50); err == nil {
			exitCost = millis(exit)
		}
	}
	// One binary serves both of schemagate's columns: its start is measured once.
	ours := func(c contender) bool { return c.key == "pglock" || c.key == "raft" }
	binaryCost := ""
	if slices.Contains(b.opts.compareParts, "herd") && slices.ContainsFunc(cs, ours) {
		if cpu, err := startExitCost(ctx, b.bin, 20, "version"); err == nil {
			binaryCost = millis(cpu)
		}
	}
	for _, c := range cs {
		g.cols = append(g.cols, c.name)
		herdDir, cutDir, err := b.compareDirs(c, cutSet)
		if err != nil {
			return err
		}
		base := time.Duration(0)
		if binaryCost != "" && ours(c) {
			g.set("the binary alone, started and ended (schemagate version): CPU, median of 20", c.name, binaryCost)
		}
		if slices.Contains(b.opts.compareParts, "herd") {
			if base, err = b.compareHerds(ctx, g, c, herdDir); err != nil {
				return err
			}
			if base == 0 {
				continue // even one replica alone failed
			}
		}
		for _, how := range []string{"kill", "blackhole"} {
			if !slices.Contains(b.opts.compareParts, how) {
				continue
			}
			if err := b.compareCut(ctx, g, c, cutDir, how, base); err != nil {
				return err
			}
		}
		if slices.Contains(b.opts.compareParts, "wait") {
			if err := b.compareWaitCost(ctx, g, c, cutDir); err != nil {
				return err
			}
		}
	}
	if len(floors) > 0 {
		const col = "PostgreSQL alone: a release wakes N-1 queued sessions"
		g.cols = append(g.cols, col)
		for n, cell := range floors {
			g.set(fmt.Sprintf("herd of %d: final commit → waiter ready, p50 / p99", n), col, cell)
		}
		if exitCost != "" {
			g.set("one backend ending, of 50 closed at once: machine CPU each", col, exitCost)
		}
	}
	b.grid = g
	return nil
}

// compareDirs writes the herd set and the cut set in the contender's file format.
func (b *bench) compareDirs(c contender, cutSet fleet.MigrationSet) (herd, cut string, err error) {
	write := b.migrationDir
	if c.migrate {
		write = b.migrateDir
	}
	if herd, err = write("cmp-herd-"+c.key, b.benchSet()); err != nil {
		return "", "", err
	}
	cut, err = write("cmp-cut-"+c.key, cutSet)
	return herd, cut, err
}

// race is how one herd run (or one replica alone) ended.
type race struct {
	took     time.Duration   // first start to last exit
	timedOut bool            // some replica still ran at the bound
	running  int             // how many
	failed   int             // replicas that exited non-zero
	reasons  []string        // why, one per failed replica
	twice    int             // applications beyond the first of any migration (applied_log)
	readies  []time.Duration // final commit → each waiter's ready log line
	peakOne  int             // most sessions one replica held at once
	peakAll  int             // most sessions all replicas held at once
	cpu      []time.Duration // each replica's process, its whole life (user + system, from wait4)
}

// compareHerds measures one replica alone, then each herd size; it returns the baseline, zero
// when even one replica alone did not finish.
func (b *bench) compareHerds(ctx context.Context, g *grid, c contender, dir string) (time.Duration, error) {
	var alone []time.Duration
	for range b.opts.runs {
		r, err := b.race(ctx, c, dir, 1)
		if err != nil {
			return 0, err
		}
		if r.timedOut || r.failed > 0 {
			g.set("one replica alone (baseline)", c.name, "failed: "+summarize(r.reasons))
			return 0, nil
		}
		alone = append(alone, r.took)
	}
	base := median(alone)
	g.set("one replica alone (baseline)", c.name, seconds(base))
	for _, n := range b.opts.herds {
		var rs []race
		for range b.opts.runs {
			r, err := b.race(ctx, c, dir, n)
			if err != nil {
				return 0, err
			}
			rs = append(rs, r)
			if r.timedOut {
				break
			}
		}
		b.herdCells(g, c, n, base, rs)
	}
	return base, nil
}

// herdCells fills the herd rows of one contender and size.
func (b *bench) herdCells(g *grid, c contender, n int, base time.Duration, rs []race) {
	row := func(what string) string { return fmt.Sprintf("herd of %d: %s", n, what) }
	if last := rs[len(rs)-1]; last.timedOut {
		g.set(row("all done ÷ one alone"), c.name, fmt.Sprintf("timed out (> %s)", b.opts.bound))
		g.set(row("replicas exited non-zero (median of runs)"), c.name, fmt.Sprintf("%d failed, %d still running at the bound", last.failed, last.running))
		g.note(c.name, n, last.reasons)
		return
	}
	var ratios []float64
	var readies, cpu []time.Duration
	var failed []float64
	twice, one, all := 0, 0, 0
	var reasons []string
	for _, r := range rs {
		ratios = append(ratios, r.took.Seconds()/base.Seconds())
		readies = append(readies, r.readies...)
		cpu = append(cpu, r.cpu...)
		failed = append(failed, float64(r.failed))
		twice, one, all = max(twice, r.twice), max(one, r.peakOne), max(all, r.peakAll)
		reasons = append(reasons, r.reasons...)
	}
	g.set(row("all done ÷ one alone"), c.name, ratioCell(ratios, "%.2f"))
	g.set(row("replicas exited non-zero (median of runs)"), c.name, fmt.Sprintf("%.0f / %d", medianFloat(failed), n))
	g.set(row("migrations applied twice (max of runs)"), c.name, fmt.Sprint(twice))
	wake := "no replica waited"
	if len(readies) > 0 {
		wake = millis(percentile(readies, 50)) + " / " + millis(percentile(readies, 99))
	}
	g.set(row("final commit → waiter ready, p50 / p99"), c.name, wake)
	g.set(row("peak sessions: one replica / all"), c.name, fmt.Sprintf("%d / %d", one, all))
	if len(cpu) > 0 {
		g.set(row("CPU of one replica's process, its whole life, median"), c.name, millis(median(cpu)))
	}
	g.note(c.name, n, reasons)
}

// race starts n replicas of c at once on a fresh database and waits, up to the bound, for all.
func (b *bench) race(ctx context.Context, c contender, dir string, n int) (race, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return race{}, err
	}
	defer d.drop(ctx)
	s := startSampler(ctx, d, c.app, 100*time.Millisecond)
	begin := time.Now()
	rs, err := c.start(d, dir, "r", n)
	if err != nil {
		s.stop()
		return race{}, err
	}
	defer stopAll(rs)
	var r race
	var last time.Time
	for _, p := range rs {
		code, err := p.Wait(max(time.Until(begin.Add(b.opts.bound)), time.Millisecond))
		if err != nil {
			r.timedOut = true
			r.running++
			continue
		}
		if code != 0 {
			r.failed++
			r.reasons = append(r.reasons, reason(p.Output()))
		}
		last = maxTime(last, p.ExitedAt())
		if st := p.Cmd.ProcessState; st != nil {
			r.cpu = append(r.cpu, st.UserTime()+st.SystemTime())
		}
	}
	r.peakOne, r.peakAll = s.stop()
	if r.timedOut {
		return r, nil
	}
	r.took = last.Sub(begin)
	r.twice, _ = appliedTwice(ctx, d)
	r.readies = readiesAfterCommit(ctx, d, c, rs)
	return r, nil
}

// readiesAfterCommit returns, for each replica that waited for another's migrations (it was
// running at the final commit and did not make it), the time from that commit to its ready line.
func readiesAfterCommit(ctx context.Context, d *database, c contender, rs []*fleet.Replica) []time.Duration {
	var commit time.Time
	var migrator string
	if err := d.conn.QueryRow(ctx, "SELECT at, replica FROM applied_log ORDER BY version DESC, at DESC LIMIT 1").Scan(&commit, &migrator); err != nil {
		return nil
	}
	var out []time.Duration
	for _, r := range rs {
		if c.app+r.Name == migrator || r.Started.After(commit) {
			continue
		}
		if at, ok := loggedAt(r.Output(), c.ready); ok {
			out = append(out, at.Sub(commit))
		}
	}
	return out
}

// appliedTwice counts applications of a migration beyond its first.
func appliedTwice(ctx context.Context, d *database) (int, error) {
	n, err := d.int(ctx, "SELECT count(*) - count(DISTINCT version) FROM applied_log")
	return int(n), err
}

// compareCut starts 5 replicas, cuts the migrator off inside the tenth migration (SIGKILL, or
// blackhole + SIGSTOP), and reports how many survivors became ready and when; if some did not,
// one replica started afterwards (what a restart policy would do) shows whether the database
// can still be migrated.
func (b *bench) compareCut(ctx context.Context, g *grid, c contender, dir, how string, base time.Duration) error {
	label := map[string]string{"kill": "SIGKILL of the migrator", "blackhole": "blackhole + SIGSTOP of the migrator"}[how]
	if !c.cut {
		g.set(label+": survivors ready (each run)", c.name, "n/a (no single migrator)")
		g.set(label+": cut → all survivors ready, median", c.name, "n/a")
		return nil
	}
	var recovered []time.Duration
	var summary []string
	for range b.opts.runs {
		o, err := b.cutOnce(ctx, c, dir, how)
		if errors.Is(err, fleet.ErrNoBlackhole) {
			g.set(label+": survivors ready (each run)", c.name, "not measured: "+err.Error())
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s, %s: %w", c.name, how, err)
		}
		summary = append(summary, o.summary)
		if o.allReady {
			recovered = append(recovered, o.recovered)
		}
		if o.timedOut {
			break
		}
	}
	g.set(label+": survivors ready (each run)", c.name, strings.Join(summary, "; "))
	cell := "never (all runs)"
	if len(recovered) > 0 {
		cell = seconds(median(recovered))
		if base > 0 {
			cell += fmt.Sprintf(" (%.1f × alone)", median(recovered).Seconds()/base.Seconds())
		}
		if len(recovered) < len(summary) {
			cell += fmt.Sprintf(", in %d of %d runs", len(recovered), len(summary))
		}
	}
	g.set(label+": cut → all survivors ready, median", c.name, cell)
	return nil
}

// cut is how one cut-off run ended.
type cut struct {
	allReady  bool
	recovered time.Duration // cut → last survivor ready
	timedOut  bool
	summary   string // "4/4 in 1.2 s", "0/4: timeout: can't acquire database lock; restart: Dirty database version 10"
}

func (b *bench) cutOnce(ctx context.Context, c contender, dir, how string) (cut, error) {
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return cut{}, err
	}
	defer d.drop(ctx)
	rs, err := c.start(d, dir, "r", 5)
	if err != nil {
		return cut{}, err
	}
	defer stopAll(rs)
	holder, port, err := waitForSlowStatement(ctx, d, c.app)
	if err != nil {
		return cut{}, err
	}
	var victim *fleet.Replica
	for _, r := range rs {
		if c.app+r.Name == holder {
			victim = r
		}
	}
	if victim == nil {
		return cut{}, fmt.Errorf("no replica is %s", holder)
	}
	at := time.Now()
	if how == "kill" {
		err = victim.Signal(syscall.SIGKILL)
	} else {
		var heal func() error
		if heal, err = fleet.Blackhole(port); err == nil {
			defer heal()
			err = victim.Signal(syscall.SIGSTOP)
		}
	}
	if err != nil {
		return cut{}, err
	}
	deadline := at.Add(b.opts.bound)
	var o cut
	var last time.Time
	ready, running := 0, 0
	var reasons []string
	for _, r := range rs {
		if r == victim {
			continue
		}
		code, err := r.Wait(max(time.Until(deadline), time.Millisecond))
		switch {
		case err != nil:
			running++
		case code == 0:
			ready++
			last = maxTime(last, r.ExitedAt())
		default:
			reasons = append(reasons, reason(r.Output()))
		}
	}
	o.allReady = ready == len(rs)-1
	o.recovered = last.Sub(at)
	o.summary = fmt.Sprintf("%d/%d", ready, len(rs)-1)
	switch {
	case o.allReady:
		o.summary += " in " + seconds(o.recovered)
	case running > 0:
		o.timedOut = true
		o.summary += fmt.Sprintf(", %d still waiting at %s", running, b.opts.bound)
	}
	if len(reasons) > 0 {
		o.summary += ", failed: " + summarize(reasons)
	}
	if !o.allReady && !o.timedOut {
		o.summary += "; a replica started after: " + b.restart(ctx, c, d, dir, at, deadline)
	}
	if twice, err := appliedTwice(ctx, d); err == nil && twice > 0 {
		o.summary += fmt.Sprintf(", %d migrations applied twice", twice)
	}
	return o, nil
}

// restart starts one more replica once the survivors have ended, as a restart policy would,
// and says how it ended.
func (b *bench) restart(ctx context.Context, c contender, d *database, dir string, cut, deadline time.Time) string {
	rs, err := c.start(d, dir, "restart", 1)
	if err != nil {
		return err.Error()
	}
	defer stopAll(rs)
	code, err := rs[0].Wait(max(time.Until(deadline), time.Millisecond))
	switch {
	case err != nil:
		return "still waiting at the bound"
	case code == 0:
		return fmt.Sprintf("ready %s after the cut", seconds(rs[0].ExitedAt().Sub(cut)))
	default:
		return "exit " + fmt.Sprint(code) + ": " + reason(rs[0].Output())
	}
}

func stopAll(rs []*fleet.Replica) {
	for _, r := range rs {
		r.Stop()
	}
}

// reason is the last error a replica logged (its "error" field, else its message), shortened.
func reason(output string) string {
	why := ""
	for _, line := range strings.Split(output, "\n") {
		var e struct {
			Level, Message, Error string
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch {
		case e.Error != "":
			why = e.Error
		case e.Level == "error" || e.Level == "fatal":
			why = e.Message
		}
	}
	if why == "" {
		lines := strings.Split(strings.TrimSpace(output), "\n")
		why = lines[len(lines)-1]
	}
	// Scratch database names differ from run to run; the same failure should count as one.
	why = scratchName.ReplaceAllString(why, "sgbench_…")
	if len(why) > 160 {
		why = why[:60] + " … " + why[len(why)-100:] // keep the server's message, at the end
	}
	return strings.ToValidUTF8(why, "")
}

var scratchName = regexp.MustCompile(`sgbench_[0-9a-f]+`)

// summarize counts identical reasons: `3× "timeout: …"; 1× "…"`.
func summarize(reasons []string) string {
	counts := map[string]int{}
	var order []string
	for _, r := range reasons {
		if counts[r] == 0 {
			order = append(order, r)
		}
		counts[r]++
	}
	var parts []string
	for _, r := range order {
		parts = append(parts, fmt.Sprintf("%d× %q", counts[r], r))
	}
	return strings.Join(parts, "; ")
}

// loggedAt returns when a replica first logged message (a prefix of it), for any timestamp
// precision.
func loggedAt(output, message string) (time.Time, bool) {
	for _, line := range strings.Split(output, "\n") {
		var e struct{ Time, Message string }
		if json.Unmarshal([]byte(line), &e) == nil && strings.HasPrefix(e.Message, message) {
			t, err := time.Parse(time.RFC3339Nano, e.Time)
			return t, err == nil
		}
	}
	return time.Time{}, false
}
