package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/schemagate/schemagate/coordinator"
)

const (
	stackFile   = "../examples/swarm/stack.yml"
	composeFile = "../examples/compose/compose.yml"
)

// loadProject loads a Compose or stack file as `docker compose config` does: schema checked,
// ${VAR:-default} interpolated from env only, relative paths resolved against the file's
// directory. name is the project name (docker stack deploy's stack name); empty: the file's
// own name: key.
func loadProject(t *testing.T, file, name string, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: body}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		if name != "" {
			o.SetProjectName(name, true)
		}
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return p
}

// commandLine is what a service's container runs: its entrypoint, then its command.
func commandLine(s types.ServiceConfig) []string {
	return append(slices.Clone([]string(s.Entrypoint)), s.Command...)
}

// hasSequence reports whether want appears in args, in order and contiguous.
func hasSequence(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func envOf(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// checkComposeSecrets: a service that runs schemagate reads the database URL from a secret file
// attached to it, and no variable holds a URL with a password or a literal secret.
func checkComposeSecrets(t *testing.T, p *types.Project, s types.ServiceConfig) {
	t.Helper()
	for name, v := range s.Environment {
		if v == nil {
			continue
		}
		if credentialURL.MatchString(*v) {
			t.Errorf("service %s: %s holds a URL with a password", s.Name, name)
		}
		if secretName.MatchString(name) {
			t.Errorf("service %s: %s is a literal; secrets come from files (_FILE)", s.Name, name)
		}
	}
	path := envOf(s, "SCHEMAGATE_DATABASE_URL_FILE")
	if path == "" {
		t.Errorf("service %s: no SCHEMAGATE_DATABASE_URL_FILE", s.Name)
		return
	}
	for _, ref := range s.Secrets {
		target := ref.Target
		if target == "" {
			target = ref.Source
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		if target == path {
			if _, ok := p.Secrets[ref.Source]; !ok {
				t.Errorf("service %s: secret %s is not declared", s.Name, ref.Source)
			}
			return
		}
	}
	t.Errorf("service %s: SCHEMAGATE_DATABASE_URL_FILE=%s is no secret of the service (%+v)", s.Name, path, s.Secrets)
}

func TestSwarmStack(t *testing.T) {
	p := loadProject(t, stackFile, "app", nil)

	var job, apps []types.ServiceConfig
	for _, s := range p.Services {
		if !slices.Contains(commandLine(s), "schemagate") {
			continue
		}
		if s.Deploy != nil && s.Deploy.Mode == "replicated-job" {
			job = append(job, s)
		} else {
			apps = append(apps, s)
		}
		checkComposeSecrets(t, p, s)
		if len(s.DependsOn) > 0 {
			t.Errorf("service %s: depends_on, which docker stack deploy ignores", s.Name)
		}
	}
	if len(job) != 1 || len(apps) == 0 {
		t.Fatalf("%d replicated-job services and %d app services run schemagate; want 1 job and some apps", len(job), len(apps))
	}

	migrate := job[0]
	if !hasSequence(commandLine(migrate), "schemagate", "migrate") {
		t.Errorf("job %s runs %q, want schemagate migrate", migrate.Name, commandLine(migrate))
	}
	rp := migrate.Deploy.RestartPolicy
	if rp == nil || rp.Condition != "on-failure" || rp.MaxAttempts == nil || *rp.MaxAttempts != 3 {
		t.Errorf("job %s restart_policy %+v, want on-failure, max_attempts 3", migrate.Name, rp)
	}
	if migrate.Deploy.UpdateConfig != nil {
		t.Errorf("job %s: update_config, which Swarm rejects for jobs", migrate.Name)
	}

	deadline := func(s types.ServiceConfig) time.Duration {
		t.Helper()
		v := envOf(s, "SCHEMAGATE_TIMEOUT")
		if v == "" {
			return coordinator.DefaultConfig().Timeout // the binary's default for migrate, wait and exec
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("service %s SCHEMAGATE_TIMEOUT=%q: %v", s.Name, v, err)
		}
		return d
	}

	for _, app := range apps {
		if app.Image != migrate.Image {
			t.Errorf("app %s runs %s, the migrations come from %s: they must be one image", app.Name, app.Image, migrate.Image)
		}
		line := commandLine(app)
		dash := slices.Index(line, "--")
		if !hasSequence(line, "schemagate", "exec") || dash < 0 || dash == len(line)-1 {
			t.Errorf("app %s runs %q, want schemagate exec ... -- <app>", app.Name, line)
		}
		hc := app.HealthCheck
		if hc == nil || !(hasSequence(hc.Test, "schemagate", "probe") || hasSequence(hc.Test, "schemagate", "check")) {
			t.Fatalf("app %s health check %+v, want schemagate probe or check", app.Name, hc)
		}
		if hc.Test[0] != "CMD" {
			t.Errorf("app %s health check %q: exec form (CMD) works in images without a shell", app.Name, hc.Test)
		}
		// The app waits for the job at least as long as the job may migrate: a task that gives
		// up first fails, and a failed task rolls the update back.
		gate := deadline(app)
		if gate < deadline(migrate) {
			t.Errorf("app %s waits %v, the job %s may migrate for %v: the wait must be the longer", app.Name, gate, migrate.Name, deadline(migrate))
		}
		// Swarm replaces a task whose health check fails after start_period: it must cover the
		// wait for a migration, and the gate's own deadline.
		if hc.StartPeriod == nil || time.Duration(*hc.StartPeriod) < 5*time.Minute || time.Duration(*hc.StartPeriod) <= gate {
			t.Errorf("app %s start_period %v: want at least 5m and more than the gate's deadline %v", app.Name, hc.StartPeriod, gate)
		}
		// The health check's own --timeout, not SCHEMAGATE_TIMEOUT, bounds `check`.
		if i := slices.Index(hc.Test, "--timeout"); i < 0 || i+1 >= len(hc.Test) {
			t.Errorf("app %s health check %q: pass --timeout (SCHEMAGATE_TIMEOUT is the gate's deadline)", app.Name, hc.Test)
		} else if d, err := time.ParseDuration(hc.Test[i+1]); err != nil || hc.Timeout == nil || d >= time.Duration(*hc.Timeout) {
			t.Errorf("app %s: check --timeout %s must be under the health check timeout %v", app.Name, hc.Test[i+1], hc.Timeout)
		}
		uc := app.Deploy.UpdateConfig
		if uc == nil || uc.Order != "start-first" {
			t.Errorf("app %s update_config %+v, want order: start-first", app.Name, uc)
		}
	}

	for name, secret := range p.Secrets {
		if !secret.External {
			t.Errorf("secret %s: want an external Docker secret (docker secret create), not a file", name)
		}
	}

	// APP_IMAGE picks the release; both services follow it.
	custom := loadProject(t, stackFile, "app", map[string]string{"APP_IMAGE": "registry.example/app:9.9.9"})
	for _, s := range custom.Services {
		if s.Image != "registry.example/app:9.9.9" {
			t.Errorf("APP_IMAGE set: service %s runs %s", s.Name, s.Image)
		}
	}
}

func TestComposeExample(t *testing.T) {
	p := loadProject(t, composeFile, "", nil)
	pg, err := p.GetService("postgres")
	if err != nil {
		t.Fatal(err)
	}
	if pg.Image != "postgres:15" || pg.HealthCheck == nil || len(pg.HealthCheck.Test) == 0 {
		t.Errorf("postgres: image %s, health check %+v; want postgres:15 with a health check", pg.Image, pg.HealthCheck)
	}
	app, err := p.GetService("app")
	if err != nil {
		t.Fatal(err)
	}
	if app.Deploy == nil || app.Deploy.Replicas == nil || *app.Deploy.Replicas != 3 {
		t.Errorf("app deploy %+v, want 3 replicas", app.Deploy)
	}
	line := commandLine(app)
	dash := slices.Index(line, "--")
	if !hasSequence(line, "schemagate", "exec") || !hasSequence(line, "--dir", "/migrations") ||
		!hasSequence(line, "--env", "ENABLE_DB_MIGRATIONS=false") || dash < 0 || dash == len(line)-1 {
		t.Errorf("app runs %q, want schemagate exec --dir /migrations --env ENABLE_DB_MIGRATIONS=false -- <app>", line)
	}
	if dep, ok := app.DependsOn["postgres"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("app depends_on %+v, want postgres: service_healthy", app.DependsOn)
	}
	var migrations *types.ServiceVolumeConfig
	for i, v := range app.Volumes {
		if v.Target == "/migrations" {
			migrations = &app.Volumes[i]
		}
	}
	if migrations == nil || !migrations.ReadOnly || migrations.Type != types.VolumeTypeBind {
		t.Fatalf("app volumes %+v, want ./migrations bound read-only at /migrations", app.Volumes)
	}
	files, err := filepath.Glob(filepath.Join(migrations.Source, "*.sql"))
	if err != nil || len(files) == 0 {
		t.Errorf("the migrations bound at /migrations (%s) hold no .sql file", migrations.Source)
	}
	checkComposeSecrets(t, p, app)
	for name, v := range pg.Environment {
		if secretName.MatchString(name) && v != nil {
			t.Errorf("postgres: %s is a literal", name)
		}
	}
}
