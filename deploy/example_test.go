package deploy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// raftValues switch the example to lock: raft; a rollout must then start all new pods at once.
const raftValues = "schemagate: {lock: raft, raft: {existingSecret: app-raft}}"

// The variants of examples/chart-app's values that every check runs on.
var exampleVariants = []struct {
	name   string
	values []string
}{
	{"nativeSidecar", nil},
	{"initContainer", []string{"gate: initContainer"}},
	{"raft", []string{raftValues, "strategy: {rollingUpdate: {maxSurge: 100%}}"}},
	{"raft initContainer Recreate", []string{"gate: initContainer", raftValues, "strategy: {type: Recreate, rollingUpdate: null}"}},
	{"urlFile", []string{"schemagate: {database: {urlFile: true}}"}},
	{"whenAhead unready", []string{"schemagate: {whenAhead: unready}"}},
	{"neverMigrate", []string{"schemagate: {neverMigrate: true}"}},
	{"neverMigrate initContainer", []string{"gate: initContainer", "schemagate: {neverMigrate: true}"}},
	{"migrations in the schemagate image", []string{"schemagate: {migrations: {dir: /migrations, fromImage: {enabled: false}}, image: {repository: registry.example/app-migrations, tag: '2.4.0'}}"}},
	{"schemagate digest", []string{`schemagate: {image: {registry: mirror.example, repository: schemagate/schemagate, digest: "sha256:` + strings.Repeat("c3", 32) + `"}}`}},
	{"extras", []string{`schemagate: {extraEnv: [{name: SCHEMAGATE_POLL_INTERVAL, value: 1s}], extraArgs: [--watch-interval, 30s], timeout: "0"}`}},
	{"app digest", []string{`image: {digest: "sha256:` + strings.Repeat("d4", 32) + `"}`}},
}

func TestExampleVariantsPassEveryCheck(t *testing.T) {
	dir := example(t)
	for _, v := range exampleVariants {
		t.Run(v.name, func(t *testing.T) {
			r := mustRender(t, dir, values(t, v.values...))
			checkRendering(t, r)
			d := one[*appsv1.Deployment](t, r)
			spec := d.Spec.Template.Spec
			sg := container(t, spec, "schemagate")
			key := "url"
			checkDatabaseURLFromSecret(t, spec, sg, "app-db", key)
			app := container(t, spec, "app")
			if e, _ := env(app, "DATABASE_URL"); e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "app-db" {
				t.Errorf("app DATABASE_URL = %+v, want the Secret app-db", e)
			}
			if got := envValue(t, app, "ENABLE_DB_MIGRATIONS"); got != "false" {
				t.Errorf("app ENABLE_DB_MIGRATIONS=%q: the app must not migrate by itself", got)
			}
			if slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "schemagate" }) >= 0 {
				t.Error("schemagate is a regular container; it must be an init container (native sidecar or not)")
			}
			// The copy, when there is one, comes before schemagate reads the files.
			names := containerNames(spec)
			if i := slices.Index(names, "schemagate-copy-migrations"); i > slices.Index(names, "schemagate") {
				t.Errorf("init containers %v: the copy must come before schemagate", names)
			}
			// The migrations are copied from the app's own image: the same code, the same files.
			if i := slices.Index(names, "schemagate-copy-migrations"); i >= 0 && spec.InitContainers[i].Image != app.Image {
				t.Errorf("migrations copied from %q, the app runs %q", spec.InitContainers[i].Image, app.Image)
			}
		})
	}
}

// The native sidecar: restartPolicy Always, its port, and probes on the endpoints serve has.
func TestExampleNativeSidecar(t *testing.T) {
	r := mustRender(t, example(t), values(t))
	d := one[*appsv1.Deployment](t, r)
	spec := d.Spec.Template.Spec
	sg := container(t, spec, "schemagate")
	if sg.RestartPolicy == nil || *sg.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("schemagate restartPolicy %v, want Always (a native sidecar)", sg.RestartPolicy)
	}
	if !slices.Equal(sg.Args, []string{"serve"}) {
		t.Errorf("sidecar args %q, want [serve]", sg.Args)
	}
	port := containerPort(t, sg, "schemagate")
	if port != 9090 {
		t.Errorf("port schemagate is %d, want 9090", port)
	}
	if got := envValue(t, sg, "SCHEMAGATE_LISTEN"); got != ":"+strconv.Itoa(int(port)) {
		t.Errorf("SCHEMAGATE_LISTEN=%q, but the port named schemagate is %d", got, port)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", sg.StartupProbe, "/readyz"},
		{"readinessProbe", sg.ReadinessProbe, "/readyz"},
		{"livenessProbe", sg.LivenessProbe, "/livez"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: %+v, want an HTTP GET", p.name, p.probe)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			t.Errorf("%s GETs %s, want %s", p.name, g.Path, p.path)
		}
		if g.Port.String() != "schemagate" && g.Port.IntValue() != int(port) {
			t.Errorf("%s on port %s, want schemagate (%d)", p.name, g.Port.String(), port)
		}
	}
	if sp := sg.StartupProbe; sp.PeriodSeconds != 2 || sp.FailureThreshold != 1800 {
		t.Errorf("startupProbe every %ds, %d failures; want 2 s and 1800 (1 h)", sp.PeriodSeconds, sp.FailureThreshold)
	}
	// The rollout must not be declared failed while a pod may still be waiting for its schema.
	window := sg.StartupProbe.PeriodSeconds * sg.StartupProbe.FailureThreshold
	if d.Spec.ProgressDeadlineSeconds == nil || *d.Spec.ProgressDeadlineSeconds != 3600 || *d.Spec.ProgressDeadlineSeconds < window {
		t.Errorf("progressDeadlineSeconds %v, want 3600 and at least the startup window %d s", d.Spec.ProgressDeadlineSeconds, window)
	}
	app := container(t, spec, "app")
	if app.RestartPolicy != nil {
		t.Errorf("the app container has restartPolicy %v", *app.RestartPolicy)
	}
	if _, ok := env(sg, "SCHEMAGATE_NEVER_MIGRATE"); ok {
		t.Error("SCHEMAGATE_NEVER_MIGRATE set by default")
	}

	custom := one[*appsv1.Deployment](t, mustRender(t, example(t), values(t,
		"progressDeadlineSeconds: 7300", "schemagate: {sidecar: {port: 9190, startupProbe: {periodSeconds: 4, failureThreshold: 1800}}}")))
	c := container(t, custom.Spec.Template.Spec, "schemagate")
	if p := containerPort(t, c, "schemagate"); p != 9190 || envValue(t, c, "SCHEMAGATE_LISTEN") != ":9190" {
		t.Errorf("sidecar.port 9190: port %d, SCHEMAGATE_LISTEN %q", p, envValue(t, c, "SCHEMAGATE_LISTEN"))
	}
	if c.StartupProbe.PeriodSeconds != 4 || *custom.Spec.ProgressDeadlineSeconds != 7300 {
		t.Errorf("startupProbe.periodSeconds %d, progressDeadlineSeconds %d; want 4, 7300", c.StartupProbe.PeriodSeconds, *custom.Spec.ProgressDeadlineSeconds)
	}
}

func TestExampleInitContainer(t *testing.T) {
	for _, tc := range []struct {
		values []string
		args   []string
	}{
		{[]string{"gate: initContainer"}, []string{"migrate"}},
		{[]string{"gate: initContainer", "schemagate: {neverMigrate: true}"}, []string{"wait"}},
	} {
		spec := one[*appsv1.Deployment](t, mustRender(t, example(t), values(t, tc.values...))).Spec.Template.Spec
		sg := container(t, spec, "schemagate")
		if !slices.Equal(sg.Args, tc.args) {
			t.Errorf("%v: args %q, want %q", tc.values, sg.Args, tc.args)
		}
		if sg.RestartPolicy != nil || sg.StartupProbe != nil || sg.ReadinessProbe != nil || sg.LivenessProbe != nil {
			t.Errorf("%v: a classic init container has no restartPolicy and no probes: %+v", tc.values, sg)
		}
	}
	sidecar := container(t, one[*appsv1.Deployment](t, mustRender(t, example(t), values(t, "schemagate: {neverMigrate: true}"))).Spec.Template.Spec, "schemagate")
	if got := envValue(t, sidecar, "SCHEMAGATE_NEVER_MIGRATE"); got != "true" {
		t.Errorf("neverMigrate: SCHEMAGATE_NEVER_MIGRATE=%q on the sidecar", got)
	}
}

func TestExampleWhenAheadUnready(t *testing.T) {
	r := mustRender(t, example(t), values(t, "schemagate: {whenAhead: unready}"))
	for where, spec := range r.podSpecs() {
		if got := envValue(t, container(t, spec, "schemagate"), "SCHEMAGATE_WHEN_AHEAD"); got != "unready" {
			t.Errorf("%s: SCHEMAGATE_WHEN_AHEAD=%q", where, got)
		}
	}
	_, err := render(example(t), values(t, "gate: initContainer", "schemagate: {whenAhead: unready}"))
	if err == nil || !strings.Contains(err.Error(), "whenAhead: unready applies to serve") {
		t.Errorf("initContainer with whenAhead unready: %v, want a refusal", err)
	}
}

// With lock: raft the sidecars find each other through a headless Service that publishes
// unready pods: they are unready on purpose while they wait.
func TestExampleRaft(t *testing.T) {
	r := mustRender(t, example(t), values(t, "replicaCount: 5", "strategy: {rollingUpdate: {maxSurge: 100%}}",
		"schemagate: {lock: raft, raft: {existingSecret: app-raft, secretKey: key}}"))
	d := one[*appsv1.Deployment](t, r)
	svc := headlessService(t, r)
	if !svc.Spec.PublishNotReadyAddresses {
		t.Error("the raft Service must set publishNotReadyAddresses: true (waiting pods are unready)")
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the raft Service selects %v, the pods have %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "raft" || svc.Spec.Ports[0].Port != 9091 || svc.Spec.Ports[0].TargetPort.IntValue() != 9091 {
		t.Errorf("raft Service ports %+v, want raft 9091 -> 9091", svc.Spec.Ports)
	}

	spec := d.Spec.Template.Spec
	sg := container(t, spec, "schemagate")
	if p := containerPort(t, sg, "raft"); p != 9091 {
		t.Errorf("container port raft %d, want 9091", p)
	}
	want := []string{"serve", "--raft-listen", ":9091", "--raft-advertise", "$(POD_IP):9091",
		"--raft-discover", fmt.Sprintf("dns:%s.%s.svc.cluster.local", svc.Name, namespace), "--raft-expect", "5"}
	if !slices.Equal(sg.Args, want) {
		t.Errorf("sidecar args\n%q\nwant\n%q", sg.Args, want)
	}
	if e, _ := env(sg, "POD_IP"); e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("POD_IP = %+v, want status.podIP", e)
	}
	if got := envValue(t, sg, "SCHEMAGATE_LOCK"); got != "raft" {
		t.Errorf("SCHEMAGATE_LOCK=%q", got)
	}
	if e, _ := env(sg, "SCHEMAGATE_RAFT_SECRET"); e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "app-raft" || e.ValueFrom.SecretKeyRef.Key != "key" {
		t.Errorf("SCHEMAGATE_RAFT_SECRET = %+v, want secretKeyRef app-raft/key", e)
	}
	// `check` reads the database once and joins no cluster: the test Pod gets the lock (it
	// reads through the same kind of connection) but no raft flags, address or secret; the
	// binary's check has no --raft-* flags and would refuse them.
	check := container(t, one[*corev1.Pod](t, r).Spec, "schemagate")
	if !slices.Equal(check.Args, []string{"check"}) {
		t.Errorf("test Pod args %q, want [check]", check.Args)
	}
	if got := envValue(t, check, "SCHEMAGATE_LOCK"); got != "raft" {
		t.Errorf("test Pod SCHEMAGATE_LOCK=%q, want raft", got)
	}
	for _, name := range []string{"POD_IP", "SCHEMAGATE_RAFT_SECRET"} {
		if _, ok := env(check, name); ok {
			t.Errorf("test Pod has %s; check joins no raft cluster", name)
		}
	}

	if _, err := render(example(t), values(t, "strategy: {rollingUpdate: {maxSurge: 100%}}", "schemagate: {lock: raft}")); err == nil || !strings.Contains(err.Error(), "raft.existingSecret is required") {
		t.Errorf("lock raft without raft.existingSecret: %v, want a refusal", err)
	}
	if got := mustRender(t, example(t), values(t)); len(all[*corev1.Service](got)) != 1 {
		t.Errorf("lock postgres renders %d Services, want only the app's", len(all[*corev1.Service](got)))
	}
}

// Without the database Secret, rendering stops and says what to create.
func TestExampleNeedsTheDatabaseSecret(t *testing.T) {
	for _, gate := range []string{"nativeSidecar", "initContainer"} {
		_, err := render(example(t), values(t, "gate: "+gate, "schemagate: {database: {existingSecret: ''}}"))
		if err == nil || !strings.Contains(err.Error(), "database.existingSecret is required") ||
			!strings.Contains(err.Error(), "kubectl create secret generic") {
			t.Errorf("%s without the Secret: %v", gate, err)
		}
	}
}

// The schemagate image defaults to the schemagate chart's appVersion, found from the
// including chart through .Subcharts, not the app's appVersion.
func TestExampleSchemagateImageFollowsItsChart(t *testing.T) {
	sgChart, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, example(t), values(t))
	sg := container(t, one[*appsv1.Deployment](t, r).Spec.Template.Spec, "schemagate")
	if want := "ghcr.io/schemagate/schemagate:" + sgChart.Metadata.AppVersion; sg.Image != want {
		t.Errorf("schemagate image %q, want %q", sg.Image, want)
	}
	digest := "sha256:" + strings.Repeat("c3", 32)
	r = mustRender(t, example(t), values(t, `schemagate: {image: {registry: mirror.example, repository: schemagate/schemagate, digest: "`+digest+`"}}`))
	for where, spec := range r.podSpecs() {
		if got := container(t, spec, "schemagate").Image; got != "mirror.example/schemagate/schemagate@"+digest {
			t.Errorf("%s: image %q, want the digest", where, got)
		}
	}
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port %s: %+v", c.Name, name, c.Ports)
	return 0
}

// With lock: raft the raft Service selects only the pods of the current generation (schemagate
// image, migrations image, checksum): in a rollout, the new pods' members must find each other,
// not the old pods', which belong to the previous cluster and refuse them.
func TestExampleRaftServiceSelectsOneGeneration(t *testing.T) {
	render := func(extra ...string) (*corev1.Service, *appsv1.Deployment) {
		t.Helper()
		r := mustRender(t, example(t), values(t, append([]string{raftValues, "strategy: {rollingUpdate: {maxSurge: 100%}}"}, extra...)...))
		return headlessService(t, r), one[*appsv1.Deployment](t, r)
	}
	selects := func(svc *corev1.Service, d *appsv1.Deployment) bool {
		return labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels))
	}
	oldSvc, oldPods := render("image: {tag: '2.4.0'}")
	if !selects(oldSvc, oldPods) {
		t.Fatalf("the raft Service selects %v, its pods have %v", oldSvc.Spec.Selector, oldPods.Spec.Template.Labels)
	}
	for what, extra := range map[string]string{
		"a new app image (the migrations come from it)": "image: {tag: '2.5.0'}",
		"a new schemagate image":                        "{image: {tag: '2.4.0'}, schemagate: {image: {tag: '1.0.1'}}}",
		"a new migrations.checksum":                     "{image: {tag: '2.4.0'}, schemagate: {migrations: {checksum: abc123}}}",
	} {
		newSvc, newPods := render(extra)
		if !selects(newSvc, newPods) {
			t.Errorf("%s: the raft Service selects %v, its pods have %v", what, newSvc.Spec.Selector, newPods.Spec.Template.Labels)
		}
		if selects(newSvc, oldPods) {
			t.Errorf("%s: the new raft Service %v still selects the old pods %v", what, newSvc.Spec.Selector, oldPods.Spec.Template.Labels)
		}
	}
	// The generation is no selector of the Deployment: that one is immutable.
	if _, ok := oldPods.Spec.Selector.MatchLabels["schemagate/raft-generation"]; ok {
		t.Error("the Deployment's selector holds the generation; it cannot change after the first install")
	}
	// Without raft the pods carry no generation label (nothing selects on it).
	if l := one[*appsv1.Deployment](t, mustRender(t, example(t), values(t))).Spec.Template.Labels; l["schemagate/raft-generation"] != "" {
		t.Errorf("lock postgres: pod labels %v hold a raft generation", l)
	}
}

// A RollingUpdate that adds pods one at a time never forms a Raft cluster of all replicas: the
// example refuses it, and accepts the strategies that start every new pod together.
func TestExampleRaftNeedsAllNewPodsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		strategy string
		ok       bool
	}{
		{"{rollingUpdate: {maxSurge: 25%}}", false},
		{"{rollingUpdate: {maxSurge: 1}}", false},
		{"{rollingUpdate: {maxSurge: 99%}}", false},
		{"{rollingUpdate: {maxSurge: 100%}}", true},
		{"{rollingUpdate: {maxSurge: 3}}", true},
		{"{type: Recreate, rollingUpdate: null}", true},
	} {
		_, err := render(example(t), values(t, raftValues, "strategy: "+tc.strategy))
		if tc.ok && err != nil {
			t.Errorf("strategy %s: %v", tc.strategy, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "must start together")) {
			t.Errorf("strategy %s: %v, want a refusal", tc.strategy, err)
		}
	}
	if _, err := render(example(t), values(t, "strategy: {rollingUpdate: {maxSurge: 1}}")); err != nil {
		t.Errorf("lock postgres refuses a one-at-a-time rollout: %v", err)
	}
}

// headlessService returns the rendered headless Service (the raft peers' DNS name).
func headlessService(t testing.TB, r *rendering) *corev1.Service {
	t.Helper()
	for _, s := range all[*corev1.Service](r) {
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			return s
		}
	}
	t.Fatalf("no headless Service among %v", r.kinds())
	return nil
}

// sidecar.serveDetail reaches `serve` (and only serve) as SCHEMAGATE_SERVE_DETAIL: full by
// default, summary on request, nothing else.
func TestExampleServeDetail(t *testing.T) {
	for _, tc := range []struct{ values, want string }{
		{"", "full"},
		{"schemagate: {sidecar: {serveDetail: summary}}", "summary"},
		{"schemagate: {sidecar: {serveDetail: full}}", "full"},
	} {
		r := mustRender(t, example(t), values(t, tc.values))
		sg := container(t, one[*appsv1.Deployment](t, r).Spec.Template.Spec, "schemagate")
		if got := envValue(t, sg, "SCHEMAGATE_SERVE_DETAIL"); got != tc.want {
			t.Errorf("%q: SCHEMAGATE_SERVE_DETAIL=%q, want %q", tc.values, got, tc.want)
		}
		// check (the test Pod) and migrate have no such flag.
		if _, ok := env(container(t, one[*corev1.Pod](t, r).Spec, "schemagate"), "SCHEMAGATE_SERVE_DETAIL"); ok {
			t.Errorf("%q: the test Pod's check gets SCHEMAGATE_SERVE_DETAIL", tc.values)
		}
	}
	init := container(t, one[*appsv1.Deployment](t, mustRender(t, example(t), values(t, "gate: initContainer"))).Spec.Template.Spec, "schemagate")
	if _, ok := env(init, "SCHEMAGATE_SERVE_DETAIL"); ok {
		t.Error("the init container's migrate gets SCHEMAGATE_SERVE_DETAIL")
	}
	if _, err := render(example(t), values(t, "schemagate: {sidecar: {serveDetail: everything}}")); err == nil || !strings.Contains(err.Error(), "serveDetail") {
		t.Errorf("serveDetail: everything: %v, want a refusal", err)
	}
}
