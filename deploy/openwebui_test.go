package deploy

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	openWebUICompose = "../examples/open-webui/compose.yml"
	openWebUIValues  = "../examples/open-webui/values.yaml"
)

// openWebUIGate is the gate both Open WebUI examples run: the recipe of
// docs/recipes/open-webui.md.
var openWebUIGate = []string{
	"/schemagate/schemagate", "exec", "--engine=command",
	"--version-source=alembic:/app/backend/open_webui/migrations",
	"--migrate-command=python -c 'import open_webui.config'",
	"--migrate-env=ENABLE_DB_MIGRATIONS=true",
	"--env=ENABLE_DB_MIGRATIONS=false",
	"--", "bash", "start.sh",
}

// TestOpenWebUICompose loads the Compose example with compose-go: every replica runs the gate
// in front of the image's own command, after the binary was installed and PostgreSQL is
// healthy; secrets come from the environment, and the file refuses to load without them.
func TestOpenWebUICompose(t *testing.T) {
	p := loadProject(t, openWebUICompose, "", map[string]string{"POSTGRES_PASSWORD": "pw-from-env", "WEBUI_SECRET_KEY": "key-from-env"})
	app, err := p.GetService("open-webui")
	if err != nil {
		t.Fatal(err)
	}
	if got := commandLine(app); !slices.Equal(got, openWebUIGate) {
		t.Errorf("open-webui runs %q, want %q", got, openWebUIGate)
	}
	if app.Deploy == nil || app.Deploy.Replicas == nil || *app.Deploy.Replicas < 2 {
		t.Error("the example must run several replicas")
	}
	for dep, cond := range map[string]string{"postgres": "service_healthy", "schemagate-install": "service_completed_successfully"} {
		if d, ok := app.DependsOn[dep]; !ok || d.Condition != cond {
			t.Errorf("open-webui depends on %s with %+v, want %s", dep, app.DependsOn[dep], cond)
		}
	}
	if v := app.Environment["DATABASE_URL"]; v == nil || !strings.Contains(*v, "pw-from-env") {
		t.Errorf("DATABASE_URL is not built from POSTGRES_PASSWORD: %v", v)
	}
	install, err := p.GetService("schemagate-install")
	if err != nil {
		t.Fatal(err)
	}
	if got := commandLine(install); !slices.Equal(got, []string{"install", "/schemagate"}) {
		t.Errorf("schemagate-install runs %q", got)
	}
	body, _ := os.ReadFile(openWebUICompose)
	if strings.Contains(string(body), "pw-from-env") {
		t.Fatal("test secret leaked into the file")
	}
}

// TestOpenWebUIValues: the values for the official open-webui chart run the same gate, take
// the database URL and the session key from Secrets, and give the startup probe at least as
// long as schemagate's deadline.
func TestOpenWebUIValues(t *testing.T) {
	body, err := os.ReadFile(openWebUIValues)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		DatabaseURL  string   `json:"databaseUrl"`
		Command      []string `json:"command"`
		Args         []string `json:"args"`
		ExtraEnvVars []struct {
			Name      string         `json:"name"`
			Value     string         `json:"value"`
			ValueFrom map[string]any `json:"valueFrom"`
		} `json:"extraEnvVars"`
		ExtraInitContainers []struct {
			Args []string `json:"args"`
		} `json:"extraInitContainers"`
		StartupProbe struct {
			PeriodSeconds    int `json:"periodSeconds"`
			FailureThreshold int `json:"failureThreshold"`
		} `json:"startupProbe"`
	}
	if err := yaml.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if got := append(slices.Clone(v.Command), v.Args...); !slices.Equal(got, openWebUIGate) {
		t.Errorf("the container runs %q, want %q", got, openWebUIGate)
	}
	if v.DatabaseURL != "" {
		t.Error("databaseUrl must stay empty: the URL comes from a Secret")
	}
	env := map[string]string{}
	for _, e := range v.ExtraEnvVars {
		switch {
		case e.ValueFrom["secretKeyRef"] != nil:
			env[e.Name] = "secret"
		default:
			env[e.Name] = e.Value
		}
	}
	for _, name := range []string{"DATABASE_URL", "WEBUI_SECRET_KEY"} {
		if env[name] != "secret" {
			t.Errorf("%s must come from a Secret", name)
		}
	}
	if len(v.ExtraInitContainers) != 1 || !slices.Equal(v.ExtraInitContainers[0].Args, []string{"install", "/schemagate"}) {
		t.Errorf("init containers: %+v", v.ExtraInitContainers)
	}
	if probe := v.StartupProbe.PeriodSeconds * v.StartupProbe.FailureThreshold; env["SCHEMAGATE_TIMEOUT"] != "30m" || probe < 30*60 {
		t.Errorf("startup probe allows %ds, SCHEMAGATE_TIMEOUT is %q: the probe must outlast the gate", probe, env["SCHEMAGATE_TIMEOUT"])
	}
}

// TestOpenWebUIGateFlags: the binary knows every flag the recipe passes.
func TestOpenWebUIGateFlags(t *testing.T) {
	bin := buildImageBinary(t, t.TempDir())
	out, err := exec.Command(bin, "exec", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("exec --help: %v\n%s", err, out)
	}
	for _, a := range openWebUIGate[2:] {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(a, "=")
		if !strings.Contains(string(out), name+" ") {
			t.Errorf("exec has no flag %s", name)
		}
	}
}
