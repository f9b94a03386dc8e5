package deploy

import (
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/schemagate/schemagate/coordinator"
)

const (
	openWebUICompose = "../examples/open-webui/compose.yml"
	openWebUIValues  = "../examples/open-webui/values.yaml"
	// The official open-webui chart, kept next to the repository, not in it (see its README).
	openWebUIChart = "../../shared/upstream/open-webui-chart"
)

// openWebUIOff turns off the official chart's subcharts, which the stored copy lacks.
const openWebUIOff = "{ollama: {enabled: false}, pipelines: {enabled: false}, tika: {enabled: false}, terminals: {enabled: false}}"

// openWebUIBoot is how long Open WebUI may take to listen once the gate let it start: the
// first start downloads the embedding model. The official chart's own example startupProbe
// allows about 2 minutes.
const openWebUIBoot = 5 * time.Minute

// openWebUISecret matches the names of the variables whose values are secrets: they must come
// from a Secret.
var openWebUISecret = regexp.MustCompile(`(?i)(DATABASE_URL|PASSWORD|SECRET|TOKEN|_KEY|_KEYS|CREDENTIALS_JSON)$`)

// renderOpenWebUI renders the official open-webui chart with examples/open-webui/values.yaml,
// as `helm install -f examples/open-webui/values.yaml open-webui/open-webui` would.
func renderOpenWebUI(t *testing.T, extra ...string) *rendering {
	t.Helper()
	if _, err := os.Stat(openWebUIChart); err != nil {
		t.Skipf("the official open-webui chart is not at %s (%v): it lives next to the repository, not in it", openWebUIChart, err)
	}
	body, err := os.ReadFile(openWebUIValues)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(openWebUIChart)
	if err != nil {
		t.Fatal(err)
	}
	// As helm install renders it: the chart reads values it does not define (lax), which
	// render as empty.
	vals := values(t, append([]string{string(body), openWebUIOff}, extra...)...)
	r, err := renderWith(ch, vals, renderOptions{kube: kubeVersion})
	if err != nil {
		t.Fatalf("render the official chart with %s: %v", openWebUIValues, err)
	}
	return r
}

// openWebUIApp returns the app's workload (the one whose container is named after the chart)
// and that container.
func openWebUIApp(t *testing.T, r *rendering) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	for _, s := range all[*appsv1.StatefulSet](r) {
		t.Errorf("StatefulSet %s: Open WebUI must run as a Deployment (workload.kind), whose pods start together and share the data volume", s.Name)
	}
	for _, d := range all[*appsv1.Deployment](r) {
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "open-webui" {
				return d, c
			}
		}
	}
	t.Fatalf("no Deployment runs the open-webui container: %v", r.kinds())
	return nil, corev1.Container{}
}

// The example values, rendered by the official chart: Open WebUI as several replicas behind
// the gate, whose new pods start together; every replica runs the gate and no app process
// migrates by itself.
func TestOpenWebUIChartRunsTheGate(t *testing.T) {
	r := renderOpenWebUI(t)
	d, app := openWebUIApp(t, r)
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if replicas < 2 {
		t.Errorf("%d replicas: the example is about several", replicas)
	}
	// All new pods start together: one migrates, the others wait for it.
	switch s := d.Spec.Strategy; s.Type {
	case appsv1.RecreateDeploymentStrategyType:
	case appsv1.RollingUpdateDeploymentStrategyType, "":
		surge := intstr.FromString("25%")
		if s.RollingUpdate != nil && s.RollingUpdate.MaxSurge != nil {
			surge = *s.RollingUpdate.MaxSurge
		}
		n, err := intstr.GetScaledValueFromIntOrPercent(&surge, int(replicas), true)
		if err != nil || n < int(replicas) {
			t.Errorf("strategy %+v starts %d of %d new pods at once; want all (Recreate, or maxSurge 100%%)", s, n, replicas)
		}
	default:
		t.Errorf("strategy %q", s.Type)
	}

	spec := d.Spec.Template.Spec
	// The binary: installed by an init container into a volume the app container mounts.
	sg, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	var install *corev1.Container
	for i, c := range spec.InitContainers {
		if strings.HasPrefix(c.Image, "ghcr.io/schemagate/schemagate:") {
			install = &spec.InitContainers[i]
		}
	}
	if install == nil || len(install.Args) != 2 || install.Args[0] != "install" {
		t.Fatalf("init containers %v: none runs `schemagate install DIR`", containerNames(spec))
	}
	if want := "ghcr.io/schemagate/schemagate:" + sg.Metadata.AppVersion; install.Image != want {
		t.Errorf("install image %q, want %q (a pinned release: the chart's appVersion)", install.Image, want)
	}
	dir := install.Args[1]
	if !mountsEmptyDir(spec, *install, dir, false) || !mountsEmptyDir(spec, app, dir, true) {
		t.Errorf("the binary is installed into %s: it must be an emptyDir that the init container writes and the app container mounts read-only", dir)
	}

	// The app container's command is the gate, in front of the image's own command.
	line := append(slices.Clone(app.Command), app.Args...)
	dash := slices.Index(line, "--")
	if len(line) < 2 || line[0] != dir+"/schemagate" || line[1] != "exec" || dash < 0 || dash == len(line)-1 {
		t.Fatalf("open-webui runs %q, want %s/schemagate exec ... -- <the image's command>", line, dir)
	}
	if got := line[dash+1:]; !slices.Equal(got, []string{"bash", "start.sh"}) {
		t.Errorf("behind the gate: %q, want the image's own bash start.sh", got)
	}
	for _, want := range []string{"--engine=command", "--version-source=alembic:/app/backend/open_webui/migrations"} {
		if !slices.Contains(line[:dash], want) {
			t.Errorf("the gate %q lacks %s", line[:dash], want)
		}
	}
	if i := slices.IndexFunc(line[:dash], func(a string) bool { return strings.HasPrefix(a, "--migrate-command=") }); i < 0 {
		t.Errorf("the gate %q has no --migrate-command", line[:dash])
	}
	// No app process migrates by itself: every worker of every replica starts with
	// ENABLE_DB_MIGRATIONS=false (the elected migrator's command alone may override it).
	if got := envValue(t, app, "ENABLE_DB_MIGRATIONS"); got != "false" {
		t.Errorf("the app's ENABLE_DB_MIGRATIONS=%q, want false", got)
	}
	// The chart sets tty: true, which turns schemagate's log format auto into console.
	if !app.TTY {
		t.Log("the chart no longer sets tty: true; SCHEMAGATE_LOG_FORMAT=json stays right")
	}
	if got := envValue(t, app, "SCHEMAGATE_LOG_FORMAT"); got != "json" {
		t.Errorf("SCHEMAGATE_LOG_FORMAT=%q: with tty: true the logs would be console text; want json", got)
	}
	if e, _ := env(app, "SCHEMAGATE_REPLICA_ID"); e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("SCHEMAGATE_REPLICA_ID = %+v, want the pod's name", e)
	}
}

// mountsEmptyDir reports whether c mounts the emptyDir volume at path, read-only or writable.
func mountsEmptyDir(spec corev1.PodSpec, c corev1.Container, path string, readOnly bool) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path || m.ReadOnly != readOnly {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name {
				return v.EmptyDir != nil
			}
		}
	}
	return false
}

// The startup probe lets a pod wait for the longest migration and then boot: the kubelet must
// not kill a pod that waits for, or runs, a migration.
func TestOpenWebUIChartStartupProbe(t *testing.T) {
	_, app := openWebUIApp(t, renderOpenWebUI(t))
	gate := coordinator.DefaultConfig().Timeout
	if e, ok := env(app, "SCHEMAGATE_TIMEOUT"); ok {
		d, err := time.ParseDuration(e.Value)
		if err != nil || d <= 0 {
			t.Fatalf("SCHEMAGATE_TIMEOUT=%q: want a positive duration", e.Value)
		}
		gate = d
	}
	p := app.StartupProbe
	if p == nil {
		t.Fatalf("no startupProbe: the liveness probe would kill pods that wait for a migration")
	}
	window := time.Duration(p.InitialDelaySeconds+p.PeriodSeconds*p.FailureThreshold) * time.Second
	if window < gate+openWebUIBoot {
		t.Errorf("the startupProbe allows %v; the gate may take %v and the app %v to boot after it", window, gate, openWebUIBoot)
	}
	if app.LivenessProbe == nil || app.ReadinessProbe == nil {
		t.Errorf("liveness %v, readiness %v: want both, after the startup probe", app.LivenessProbe, app.ReadinessProbe)
	}
}

// Open WebUI's own checklist for several replicas: the same WEBUI_SECRET_KEY everywhere,
// PostgreSQL, Redis for websockets and config sync, a shared data volume, an external vector
// database.
func TestOpenWebUIChartMultiReplicaChecklist(t *testing.T) {
	r := renderOpenWebUI(t)
	d, app := openWebUIApp(t, r)
	for _, name := range []string{"DATABASE_URL", "WEBUI_SECRET_KEY"} {
		if e, ok := env(app, name); !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s = %+v, want it from a Secret, the same for every replica", name, e)
		}
	}
	for name, want := range map[string]string{"ENABLE_WEBSOCKET_SUPPORT": "True", "WEBSOCKET_MANAGER": "redis"} {
		if got := envValue(t, app, name); got != want {
			t.Errorf("%s=%q, want %q", name, got, want)
		}
	}
	if _, ok := env(app, "REDIS_URL"); !ok {
		t.Error("no REDIS_URL: the replicas would not share their configuration")
	}
	// The gate refuses a replica without what --require-env lists: the chart, rendered with the
	// example, must set each of them, or every replica would be refused.
	required := envValue(t, app, "SCHEMAGATE_REQUIRE_ENV")
	if required == "" {
		t.Error("no SCHEMAGATE_REQUIRE_ENV: a replica rendered without Redis would start")
	}
	for _, entry := range strings.Split(required, ",") {
		name, _, _ := strings.Cut(entry, "=")
		if e, ok := env(app, name); !ok || e.Value == "" && e.ValueFrom == nil {
			t.Errorf("SCHEMAGATE_REQUIRE_ENV lists %s, which the rendered chart does not set: every replica would be refused", name)
		}
	}
	if v := envValue(t, app, "VECTOR_DB"); v == "" || v == "chroma" {
		t.Errorf("VECTOR_DB=%q: the default (Chroma in a SQLite file on the data volume) is for one process", v)
	}

	// The data volume: ReadWriteMany, or the files in object storage.
	var data *corev1.Volume
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "data" {
			data = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	if data == nil {
		t.Fatal("no volume data")
	}
	provider, _ := env(app, "STORAGE_PROVIDER")
	switch {
	case data.PersistentVolumeClaim != nil:
		var claim *corev1.PersistentVolumeClaim
		for _, c := range all[*corev1.PersistentVolumeClaim](r) {
			if c.Name == data.PersistentVolumeClaim.ClaimName {
				claim = c
			}
		}
		if claim == nil {
			t.Fatalf("the data volume is the claim %s, which the chart does not render: its access mode is unknown", data.PersistentVolumeClaim.ClaimName)
		}
		if !slices.Contains(claim.Spec.AccessModes, corev1.ReadWriteMany) {
			t.Errorf("the data claim %s is %v: %d replicas on several nodes need ReadWriteMany", claim.Name, claim.Spec.AccessModes, *d.Spec.Replicas)
		}
	case slices.Contains([]string{"s3", "gcs", "azure"}, provider.Value):
	default:
		t.Errorf("the data volume is %+v and STORAGE_PROVIDER=%q: want a ReadWriteMany claim or object storage", data.VolumeSource, provider.Value)
	}
}

// No secret in the rendering: no Secret or ConfigMap, every variable that holds a secret comes
// from a Secret, and no value, argument or command holds a URL with a password. The chart's own
// default OpenAI key ("0p3n-w3bu!") is a literal unless the values turn it off.
func TestOpenWebUIChartHasNoSecretLiteral(t *testing.T) {
	r := renderOpenWebUI(t)
	for _, o := range r.objects {
		if o.kind == "v1/Secret" || o.kind == "v1/ConfigMap" {
			t.Errorf("%s %s rendered", o.kind, o.name)
		}
	}
	for where, spec := range r.podSpecs() {
		for _, c := range containers(spec) {
			for _, e := range c.Env {
				if openWebUISecret.MatchString(e.Name) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s, container %s: %s is a literal; it must come from a Secret", where, c.Name, e.Name)
				}
				if credentialURL.MatchString(e.Value) {
					t.Errorf("%s, container %s: %s holds a URL with a password", where, c.Name, e.Name)
				}
			}
			for _, a := range append(slices.Clone(c.Command), c.Args...) {
				if credentialURL.MatchString(a) {
					t.Errorf("%s, container %s: an argument holds a URL with a password", where, c.Name)
				}
			}
		}
	}
	if strings.Contains(r.text, "0p3n-w3bu!") {
		t.Error("the rendering holds the chart's default OpenAI API key")
	}
}

// openWebUIHelmGate is the command and arguments examples/open-webui/values.yaml gives the
// open-webui container (TestOpenWebUIChartRunsTheGate checks that the chart renders them).
func openWebUIHelmGate(t *testing.T) []string {
	t.Helper()
	body, err := os.ReadFile(openWebUIValues)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Command, Args []string }
	if err := yaml.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return append(v.Command, v.Args...)
}

// The binary knows every flag the examples pass to the gate.
func TestOpenWebUIGateFlags(t *testing.T) {
	helmGate := openWebUIHelmGate(t)
	p := loadProject(t, openWebUICompose, "", nil)
	s, err := p.GetService("open-webui")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildImageBinary(t, t.TempDir())
	out, err := exec.Command(bin, "exec", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("exec --help: %v\n%s", err, out)
	}
	for name, line := range map[string][]string{"values.yaml": helmGate, "compose.yml": s.Command} {
		i := slices.Index(line, "exec")
		if i < 0 {
			t.Fatalf("%s: no exec in %q", name, line)
		}
		for _, a := range line[i+1:] {
			if a == "--" {
				break
			}
			flag, _, _ := strings.Cut(a, "=")
			if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(flag) + `\b`).Match(out) {
				t.Errorf("%s: exec has no flag %s", name, flag)
			}
		}
	}
}

// The Compose example: 3 replicas on one host that have what Open WebUI needs to run as
// several (one session key, PostgreSQL, Redis, one data volume, an external vector store),
// with secrets only in files, and the same gate as the Helm example.
func TestOpenWebUICompose(t *testing.T) {
	p := loadProject(t, openWebUICompose, "", nil)
	app, err := p.GetService("open-webui")
	if err != nil {
		t.Fatal(err)
	}
	if app.Deploy == nil || app.Deploy.Replicas == nil || *app.Deploy.Replicas < 2 {
		t.Error("the example must run several replicas")
	}
	for dep, cond := range map[string]string{"postgres": "service_healthy", "redis": "service_healthy", "schemagate-install": "service_completed_successfully"} {
		if d, ok := app.DependsOn[dep]; !ok || d.Condition != cond {
			t.Errorf("open-webui depends on %s with %+v, want %s", dep, app.DependsOn[dep], cond)
		}
	}
	checkComposeSecrets(t, p, app)
	for _, s := range p.Services {
		for name, v := range s.Environment {
			if v != nil && openWebUISecret.MatchString(name) && !strings.HasSuffix(name, "_FILE") {
				t.Errorf("service %s: %s is a literal; secrets are files", s.Name, name)
			}
		}
	}
	for name, s := range p.Secrets {
		if !strings.Contains(s.File, "/examples/open-webui/secrets/") {
			t.Errorf("secret %s is %+v, want a file in examples/open-webui/secrets", name, s)
		}
	}
	ignore, err := os.ReadFile("../examples/open-webui/.gitignore")
	if err != nil || !strings.Contains(string(ignore), "/secrets/") {
		t.Errorf("examples/open-webui/.gitignore must keep secrets/ out of git: %v", err)
	}

	// The entrypoint exports Open WebUI's two secrets from the service's secret files, then
	// becomes the gate with the command as its arguments.
	if len(app.Entrypoint) != 4 || app.Entrypoint[0] != "bash" || app.Entrypoint[1] != "-c" {
		t.Fatalf("entrypoint %q, want bash -c SCRIPT NAME", app.Entrypoint)
	}
	script := app.Entrypoint[2]
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^export (\w+)="\$\(cat (/run/secrets/\w+)\)"$`).FindAllStringSubmatch(script, -1) {
		exported[m[1]] = true
		if !slices.ContainsFunc(app.Secrets, func(s types.ServiceSecretConfig) bool { return "/run/secrets/"+s.Source == m[2] }) {
			t.Errorf("the entrypoint reads %s, which is no secret of the service", m[2])
		}
	}
	if !exported["DATABASE_URL"] || !exported["WEBUI_SECRET_KEY"] {
		t.Errorf("the entrypoint exports %v, want DATABASE_URL and WEBUI_SECRET_KEY from secret files:\n%s", exported, script)
	}
	if !strings.Contains(script, `exec /schemagate/schemagate "$@"`) {
		t.Errorf("the entrypoint does not become the gate:\n%s", script)
	}
	// The same gate as the Helm example.
	if helm := openWebUIHelmGate(t); !slices.Equal(append([]string{"/schemagate/schemagate"}, app.Command...), helm) {
		t.Errorf("Compose runs the gate %q, the Helm example %q", app.Command, helm)
	}

	for name, want := range map[string]string{
		"ENABLE_DB_MIGRATIONS": "false", "WEBSOCKET_MANAGER": "redis", "ENABLE_WEBSOCKET_SUPPORT": "true",
	} {
		if got := envOf(app, name); got != want {
			t.Errorf("%s=%q, want %q", name, got, want)
		}
	}
	if _, err := p.GetService("redis"); err != nil || !strings.HasPrefix(envOf(app, "REDIS_URL"), "redis://redis:") {
		t.Errorf("REDIS_URL=%q, want the project's redis service (%v)", envOf(app, "REDIS_URL"), err)
	}
	if v := envOf(app, "VECTOR_DB"); v == "" || v == "chroma" {
		t.Errorf("VECTOR_DB=%q: Chroma is a SQLite file only one process may write", v)
	}
	shared := false
	for _, v := range app.Volumes {
		if v.Target == "/app/backend/data" && v.Type == types.VolumeTypeVolume && !v.ReadOnly {
			shared = true
		}
	}
	if !shared {
		t.Errorf("volumes %+v: the replicas must share one named volume at /app/backend/data", app.Volumes)
	}
	install, err := p.GetService("schemagate-install")
	if err != nil {
		t.Fatal(err)
	}
	if got := commandLine(install); !slices.Equal(got, []string{"install", "/schemagate"}) {
		t.Errorf("schemagate-install runs %q", got)
	}
}

// docs/recipes/open-webui.md quotes the Helm example: each key it shows has the example's
// value, and every flag of its command lines is one `schemagate exec` has.
func TestOpenWebUIRecipeMatchesTheExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/recipes/open-webui.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "The part that is the gate:\n\n```yaml\n")
	quoted, _, _ := strings.Cut(after, "```")
	if !ok || quoted == "" {
		t.Fatal("the recipe no longer quotes the gate's values")
	}
	var inDoc, inFile map[string]any
	if err := yaml.Unmarshal([]byte(quoted), &inDoc); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(openWebUIValues)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(body, &inFile); err != nil {
		t.Fatal(err)
	}
	for k, v := range inDoc {
		if k == "extraEnvVars" {
			for _, e := range v.([]any) {
				if !slices.ContainsFunc(inFile[k].([]any), func(f any) bool { return reflect.DeepEqual(e, f) }) {
					t.Errorf("the recipe shows the extraEnvVars entry %v, which the example lacks", e)
				}
			}
			continue
		}
		if !reflect.DeepEqual(v, inFile[k]) {
			t.Errorf("the recipe shows %s: %v; the example has %v", k, v, inFile[k])
		}
	}

	bin := buildImageBinary(t, t.TempDir())
	out, err := exec.Command(bin, "exec", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("exec --help: %v\n%s", err, out)
	}
	lines := regexp.MustCompile(`(?s)schemagate exec (.*?)-- bash start\.sh`).FindAllStringSubmatch(string(doc), -1)
	if len(lines) < 2 {
		t.Fatalf("the recipe shows %d gate command lines, want both migrate commands", len(lines))
	}
	for _, l := range lines {
		for _, flag := range regexp.MustCompile(`(?m)(?:^|\s)(--[a-z-]+)`).FindAllStringSubmatch(l[1], -1) {
			if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(flag[1]) + `\b`).Match(out) {
				t.Errorf("the recipe passes %s, which exec does not have", flag[1])
			}
		}
	}
}
