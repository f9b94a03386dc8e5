package health

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/coordinator"
	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// durationBuckets span a trivial migration to a long index build: 10 ms to 1 h.
var durationBuckets = []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600}

// metrics are the Prometheus metrics of one replica. docs/metrics.md describes each.
type metrics struct {
	ready         prometheus.Gauge
	role          *prometheus.GaugeVec
	dbVersion     prometheus.Gauge
	targetVersion prometheus.Gauge
	pending       prometheus.Gauge
	ahead         prometheus.Gauge
	reachable     prometheus.Gauge
	duration      *prometheus.HistogramVec
	applied       prometheus.Counter
	failures      prometheus.Counter
	lockWait      prometheus.Histogram
	wait          prometheus.Histogram
	lastSuccess   prometheus.Gauge
	lastRun       *prometheus.GaugeVec
	lastRunTime   prometheus.Gauge
	fleet         *prometheus.GaugeVec
	// fleetSeries are the label pairs of fleet set by the last read of the fleet.
	fleetSeries map[[2]string]bool
}

// runOutcomes are the values of schemagate_last_run's outcome label.
var runOutcomes = []journal.Outcome{journal.Running, journal.Succeeded, journal.Failed, journal.Cancelled,
	journal.Abandoned, journal.Lost}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		ready: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_ready",
			Help: "1 when the schema satisfies this replica (the readiness probe passes), else 0."}),
		role: f.NewGaugeVec(prometheus.GaugeOpts{Name: "schemagate_role",
			Help: "1 for the part this replica played in its rollout: migrator or waiter."}, []string{"role"}),
		dbVersion: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_db_version",
			Help: "Highest migration version applied to the database, as last read."}),
		targetVersion: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_target_version",
			Help: "Migration version this replica needs."}),
		pending: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_pending_migrations",
			Help: "This replica's migrations not applied to the database, as last read."}),
		ahead: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_database_ahead",
			Help: "1 when the database holds migrations this replica does not know, else 0."}),
		reachable: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_database_reachable",
			Help: "1 when the last read of the database succeeded, else 0."}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "schemagate_migration_duration_seconds",
			Help: "Time to apply one migration, by outcome (applied or failed).", Buckets: durationBuckets},
			[]string{"outcome"}),
		applied: f.NewCounter(prometheus.CounterOpts{Name: "schemagate_migrations_applied_total",
			Help: "Migrations this replica applied."}),
		failures: f.NewCounter(prometheus.CounterOpts{Name: "schemagate_migration_failures_total",
			Help: "Migrations that failed while this replica applied them."}),
		lockWait: f.NewHistogram(prometheus.HistogramOpts{Name: "schemagate_lock_wait_seconds",
			Help: "Time from start until this replica became the migrator.", Buckets: durationBuckets}),
		wait: f.NewHistogram(prometheus.HistogramOpts{Name: "schemagate_wait_seconds",
			Help: "Time from start until the schema was ready for this replica.", Buckets: durationBuckets}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_last_success_timestamp_seconds",
			Help: "Unix time of the last read that found the schema ready for this replica."}),
	}
	m.lastRun = f.NewGaugeVec(prometheus.GaugeOpts{Name: "schemagate_last_run",
		Help: "1 for the outcome of the namespace's last migration run, as this replica last read the journal, " +
			"whoever ran it."}, []string{"outcome"})
	m.lastRunTime = f.NewGauge(prometheus.GaugeOpts{Name: "schemagate_last_run_timestamp_seconds",
		Help: "Unix time the namespace's last migration run ended (or started, while it runs)."})
	m.fleet = f.NewGaugeVec(prometheus.GaugeOpts{Name: "schemagate_fleet_replicas",
		Help: "Replicas alive that share this replica's election, by release (migration set) and phase, as this " +
			"replica last read them."}, []string{"migration_set", "phase"})
	info := f.NewGaugeVec(prometheus.GaugeOpts{Name: "schemagate_build_info",
		Help: "Always 1; labels name the build."}, []string{"version", "goversion"})
	info.WithLabelValues(schemagate.Version, runtime.Version()).Set(1)
	m.role.WithLabelValues(string(coordinator.RoleMigrator)).Set(0)
	m.role.WithLabelValues(string(coordinator.RoleWaiter)).Set(0)
	return m
}

// observe updates the gauges from a snapshot.
func (m *metrics) observe(s coordinator.Snapshot) {
	m.ready.Set(bool01(s.Ready))
	for _, r := range []coordinator.Role{coordinator.RoleMigrator, coordinator.RoleWaiter} {
		m.role.WithLabelValues(string(r)).Set(bool01(s.Role == r))
	}
	m.reachable.Set(bool01(s.Unreachable == nil && s.Status != nil))
	for _, e := range s.Journal {
		if e.Kind != journal.KindRun {
			continue
		}
		for _, o := range runOutcomes {
			m.lastRun.WithLabelValues(string(o)).Set(bool01(e.Outcome == o))
		}
		at := e.StartedAt
		if e.FinishedAt != nil {
			at = *e.FinishedAt
		}
		m.lastRunTime.Set(float64(at.UnixNano()) / 1e9)
		break
	}
	if s.FleetKnown {
		m.observeFleet(s.Fleet)
	}
	if st := s.Status; st != nil {
		m.dbVersion.Set(float64(st.Current))
		m.targetVersion.Set(float64(st.Target))
		m.pending.Set(float64(len(st.Pending)))
		m.ahead.Set(bool01(st.Ahead()))
		if s.Ready && s.Unreachable == nil {
			m.lastSuccess.Set(float64(s.ReadAt.UnixNano()) / 1e9)
		}
	}
}

// observeFleet sets the fleet's counts, and removes those of a release and phase no replica
// has any more, so that a scrape never sums a count that went away.
func (m *metrics) observeFleet(fleet []lock.Member) {
	count := map[[2]string]int{}
	for _, r := range fleet {
		count[[2]string{r.MigrationSet, r.Phase}]++
	}
	for series := range m.fleetSeries {
		if count[series] == 0 {
			m.fleet.DeleteLabelValues(series[0], series[1])
		}
	}
	m.fleetSeries = map[[2]string]bool{}
	for series, n := range count {
		m.fleet.WithLabelValues(series[0], series[1]).Set(float64(n))
		m.fleetSeries[series] = true
	}
}

func (m *metrics) migrated(_ engine.Migration, took time.Duration, err error) {
	if err != nil {
		m.failures.Inc()
		m.duration.WithLabelValues("failed").Observe(took.Seconds())
		return
	}
	m.applied.Inc()
	m.duration.WithLabelValues("applied").Observe(took.Seconds())
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
