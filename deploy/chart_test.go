package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/schemagate/schemagate"
)

// base is what every rendering of charts/schemagate needs: the Secret with the database URL.
const base = "database: {existingSecret: app-db}\n"

// The variants of charts/schemagate's values that every check runs on.
var chartVariants = []struct {
	name   string
	values []string
}{
	{"job", []string{base}},
	{"job urlFile", []string{base, "database: {existingSecret: app-db, secretKey: dsn, urlFile: true}"}},
	{"job fromImage", []string{base, `
migrations:
  dir: /var/lib/migrations
  fromImage:
    enabled: true
    image: {registry: registry.example, repository: team/app, digest: "sha256:` + strings.Repeat("ab", 32) + `"}
    path: /srv/app/db/migrations/`}},
	{"job extras", []string{base, `
extraEnv: [{name: SCHEMAGATE_POLL_INTERVAL, value: 1s}, {name: PGSSLROOTCERT, value: /certs/ca.crt}]
extraEnvFrom: [{configMapRef: {name: schemagate-settings}}]
extraVolumes: [{name: certs, configMap: {name: db-ca}}]
extraVolumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]
extraArgs: [--progress-interval, 10s]`}},
	{"job digest", []string{base, `image: {registry: mirror.example, repository: schemagate/schemagate, digest: "sha256:` + strings.Repeat("0f", 32) + `"}`}},
	{"job settings", []string{base, `{whenAhead: exit, timeout: 45m, logFormat: console, logLevel: debug}`}},
	{"job scheduling", []string{base, `
job: {backoffLimit: 2, activeDeadlineSeconds: 7200, ttlSecondsAfterFinished: 86400, annotations: {team: db}}
podLabels: {team: db}
podAnnotations: {cluster-autoscaler.kubernetes.io/safe-to-evict: "false"}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]
affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]}]}}}
imagePullSecrets: [{name: regcred}]`}},
	{"job names", []string{base, `{nameOverride: gate, fullnameOverride: a-release-name-that-is-long-enough-to-need-truncating-somewhere, commonLabels: {team: db}}`}},
	{"job no serviceAccount", []string{base, `serviceAccount: {create: false, name: migrator}`}},
	{"job sidecars", []string{base, proxySidecar, "{priorityClassName: db, commonAnnotations: {team: db}}"}},
	{"job OpenShift", []string{base, "global: {imageRegistry: mirror.example, compatibility: {openshift: {adaptSecurityContext: force}}}"}},
	{"helmHook", []string{base, "mode: helmHook"}},
	{"helmHook argocd", []string{base, "{mode: helmHook, helmHook: {argocd: true, weight: 3}, serviceAccount: {annotations: {iam.example/role: migrator}}}"}},
	{"helmHook no tests", []string{base, "{mode: helmHook, tests: {enabled: false}}"}},
	{"snippets", []string{base, "mode: snippets"}},
}

func TestChartVariantsPassEveryCheck(t *testing.T) {
	for _, v := range chartVariants {
		t.Run(v.name, func(t *testing.T) {
			r := mustRender(t, chartDir, values(t, v.values...))
			checkRendering(t, r)
			for _, j := range all[*batchv1.Job](r) {
				spec := j.Spec.Template.Spec
				secret, key := "app-db", "url"
				if strings.Contains(strings.Join(v.values, "\n"), "secretKey: dsn") {
					key = "dsn"
				}
				checkDatabaseURLFromSecret(t, spec, container(t, spec, "schemagate"), secret, key)
				if got := container(t, spec, "schemagate").Args[0]; got != "migrate" {
					t.Errorf("Job %s runs %q, want migrate", j.Name, got)
				}
			}
		})
	}
}

func TestSnippetsModeRendersNothing(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base, "mode: snippets"))
	if len(r.objects) != 0 {
		t.Fatalf("mode snippets rendered %v", r.kinds())
	}
}

// The Job fails at once on exactly the exit codes a retry cannot fix, and retries the others:
// the codes come from package schemagate, not from a copy of its numbers.
func TestJobPodFailurePolicyFollowsExitCodes(t *testing.T) {
	var fatal []int32
	for _, c := range schemagate.ExitCodes() {
		if c >= schemagate.ExitInvalidInput && !c.Retryable() {
			fatal = append(fatal, int32(c))
		}
	}
	if len(fatal) == 0 {
		t.Fatal("schemagate.ExitCodes has no non-retryable failure")
	}
	for _, mode := range []string{"job", "helmHook"} {
		t.Run(mode, func(t *testing.T) {
			job := one[*batchv1.Job](t, mustRender(t, chartDir, values(t, base, "mode: "+mode)))
			spec := job.Spec
			if spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %q: podFailurePolicy needs Never", spec.Template.Spec.RestartPolicy)
			}
			if spec.BackoffLimit == nil || *spec.BackoffLimit != 6 {
				t.Errorf("backoffLimit %v, want 6", spec.BackoffLimit)
			}
			if spec.TTLSecondsAfterFinished != nil || spec.ActiveDeadlineSeconds != nil {
				t.Errorf("ttlSecondsAfterFinished %v, activeDeadlineSeconds %v: want both unset by default",
					spec.TTLSecondsAfterFinished, spec.ActiveDeadlineSeconds)
			}
			p := spec.PodFailurePolicy
			if p == nil || len(p.Rules) != 2 {
				t.Fatalf("podFailurePolicy %+v, want 2 rules", p)
			}
			fail := p.Rules[0]
			if fail.Action != batchv1.PodFailurePolicyActionFailJob || fail.OnExitCodes == nil {
				t.Fatalf("rule 1 %+v, want FailJob on exit codes", fail)
			}
			got := slices.Clone(fail.OnExitCodes.Values)
			slices.Sort(got)
			if !slices.Equal(got, fatal) || fail.OnExitCodes.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn {
				t.Errorf("FailJob on exit codes %s %v, want In %v (non-retryable codes of package schemagate)",
					fail.OnExitCodes.Operator, got, fatal)
			}
			if name := fail.OnExitCodes.ContainerName; name == nil || *name != "schemagate" {
				t.Errorf("FailJob containerName %v, want schemagate", name)
			}
			container(t, spec.Template.Spec, *fail.OnExitCodes.ContainerName)
			ignore := p.Rules[1]
			if ignore.Action != batchv1.PodFailurePolicyActionIgnore || len(ignore.OnPodConditions) != 1 ||
				ignore.OnPodConditions[0].Type != corev1.DisruptionTarget {
				t.Errorf("rule 2 %+v, want Ignore on DisruptionTarget", ignore)
			}
		})
	}
}

func TestJobSettingsReachTheJob(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base, `
job: {backoffLimit: 2, activeDeadlineSeconds: 7200, ttlSecondsAfterFinished: 0}`))
	spec := one[*batchv1.Job](t, r).Spec
	if *spec.BackoffLimit != 2 || *spec.ActiveDeadlineSeconds != 7200 || spec.TTLSecondsAfterFinished == nil || *spec.TTLSecondsAfterFinished != 0 {
		t.Errorf("backoffLimit %d, activeDeadlineSeconds %v, ttlSecondsAfterFinished %v; want 2, 7200, 0",
			*spec.BackoffLimit, spec.ActiveDeadlineSeconds, spec.TTLSecondsAfterFinished)
	}
}

func TestHelmHook(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base, "mode: helmHook"))
	job := one[*batchv1.Job](t, r)
	sa := one[*corev1.ServiceAccount](t, r)
	if job.Name != "shop-schemagate-migrate" {
		t.Errorf("hook Job name %q: a hook keeps one name so that before-hook-creation replaces it", job.Name)
	}
	want := map[string]string{
		"helm.sh/hook":               "pre-install,pre-upgrade",
		"helm.sh/hook-weight":        "-5",
		"helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
	}
	for k, v := range want {
		if job.Annotations[k] != v {
			t.Errorf("Job annotation %s=%q, want %q", k, job.Annotations[k], v)
		}
	}
	for k := range job.Annotations {
		if strings.HasPrefix(k, "argocd.argoproj.io/") {
			t.Errorf("Job annotation %s without helmHook.argocd", k)
		}
	}
	// The Job's ServiceAccount must exist before the Job: a hook too, with a lower weight.
	if sa.Annotations["helm.sh/hook"] != "pre-install,pre-upgrade" || sa.Annotations["helm.sh/hook-weight"] != "-6" {
		t.Errorf("ServiceAccount annotations %v: want a pre-install,pre-upgrade hook of weight -6", sa.Annotations)
	}
	if job.Spec.Template.Spec.ServiceAccountName != sa.Name {
		t.Errorf("Job runs as %q, the hook ServiceAccount is %q", job.Spec.Template.Spec.ServiceAccountName, sa.Name)
	}

	argo := mustRender(t, chartDir, values(t, base, "{mode: helmHook, helmHook: {argocd: true}}"))
	for _, o := range argo.objects {
		a := objectMeta(o).Annotations
		if o.kind == "v1/Pod" {
			continue // the helm test Pod is no sync hook
		}
		if a["argocd.argoproj.io/hook"] != "PreSync" ||
			a["argocd.argoproj.io/hook-delete-policy"] != "BeforeHookCreation,HookSucceeded" ||
			a["argocd.argoproj.io/sync-wave"] != a["helm.sh/hook-weight"] {
			t.Errorf("%s %s with helmHook.argocd: annotations %v", o.kind, o.name, a)
		}
	}

	// In job mode nothing is a hook but the helm test Pod.
	for _, o := range mustRender(t, chartDir, values(t, base)).objects {
		if h := objectMeta(o).Annotations["helm.sh/hook"]; h != "" && !(o.kind == "v1/Pod" && h == "test") {
			t.Errorf("job mode: %s %s is a %s hook", o.kind, o.name, h)
		}
	}
}

// Each setting reaches the container as the SCHEMAGATE_ variable of its flag, and the extras
// are appended.
func TestSettingsReachTheEnvironment(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base, `
whenAhead: exit
timeout: 45m
logFormat: console
logLevel: debug
migrations: {dir: /db}
extraEnv: [{name: SCHEMAGATE_POLL_INTERVAL, value: 1s}]
extraArgs: [--progress-interval, 10s]`))
	spec := one[*batchv1.Job](t, r).Spec.Template.Spec
	c := container(t, spec, "schemagate")
	for name, want := range map[string]string{
		"SCHEMAGATE_DIR":           "/db",
		"SCHEMAGATE_WHEN_AHEAD":    "exit",
		"SCHEMAGATE_TIMEOUT":       "45m",
		"SCHEMAGATE_LOG_FORMAT":    "console",
		"SCHEMAGATE_LOG_LEVEL":     "debug",
		"SCHEMAGATE_LOCK":          "postgres",
		"SCHEMAGATE_POLL_INTERVAL": "1s",
	} {
		if got := envValue(t, c, name); got != want {
			t.Errorf("%s=%q, want %q", name, got, want)
		}
	}
	if e, _ := env(c, "SCHEMAGATE_REPLICA_ID"); e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("SCHEMAGATE_REPLICA_ID = %+v, want the pod's name from the downward API", e)
	}
	if want := []string{"migrate", "--progress-interval", "10s"}; !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}

	// Defaults: JSON logs; no timeout, so that the binary's own default applies.
	d := container(t, one[*batchv1.Job](t, mustRender(t, chartDir, values(t, base))).Spec.Template.Spec, "schemagate")
	if got := envValue(t, d, "SCHEMAGATE_LOG_FORMAT"); got != "json" {
		t.Errorf("default SCHEMAGATE_LOG_FORMAT=%q, want json", got)
	}
	if _, ok := env(d, "SCHEMAGATE_TIMEOUT"); ok {
		t.Error("SCHEMAGATE_TIMEOUT set by default")
	}
	zero := container(t, one[*batchv1.Job](t, mustRender(t, chartDir, values(t, base, "timeout: 0"))).Spec.Template.Spec, "schemagate")
	if got := envValue(t, zero, "SCHEMAGATE_TIMEOUT"); got != "0" {
		t.Errorf("timeout: 0 gives SCHEMAGATE_TIMEOUT=%q, want 0 (no deadline)", got)
	}
}

func TestDatabaseURLAsFile(t *testing.T) {
	r := mustRender(t, chartDir, values(t, "database: {existingSecret: app-db, secretKey: dsn, urlFile: true}"))
	for where, spec := range r.podSpecs() {
		c := container(t, spec, "schemagate")
		if _, ok := env(c, "SCHEMAGATE_DATABASE_URL"); ok {
			t.Errorf("%s: SCHEMAGATE_DATABASE_URL set with urlFile", where)
		}
		checkDatabaseURLFromSecret(t, spec, c, "app-db", "dsn")
	}
}

func TestMigrationsFromImage(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	r := mustRender(t, chartDir, values(t, base, `
migrations:
  dir: /var/lib/migrations
  fromImage:
    enabled: true
    image: {registry: registry.example, repository: team/app, tag: "2.4.0", digest: "`+digest+`"}
    path: /srv/app/migrations/`))
	for where, spec := range r.podSpecs() {
		if len(spec.InitContainers) != 1 {
			t.Fatalf("%s: init containers %v, want the copy", where, containerNames(spec))
		}
		cp := spec.InitContainers[0]
		if want := "registry.example/team/app@" + digest; cp.Image != want {
			t.Errorf("%s: copy image %q, want %q (the digest wins over the tag)", where, cp.Image, want)
		}
		if want := []string{"cp", "-R", "/srv/app/migrations/.", "/var/lib/migrations/"}; !slices.Equal(cp.Command, want) {
			t.Errorf("%s: copy command %q, want %q", where, cp.Command, want)
		}
		sg := container(t, spec, "schemagate")
		if got := envValue(t, sg, "SCHEMAGATE_DIR"); got != "/var/lib/migrations" {
			t.Errorf("%s: SCHEMAGATE_DIR=%q", where, got)
		}
		mount := func(c corev1.Container) corev1.VolumeMount {
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/var/lib/migrations" {
					return m
				}
			}
			t.Fatalf("%s: container %s does not mount /var/lib/migrations: %+v", where, c.Name, c.VolumeMounts)
			return corev1.VolumeMount{}
		}
		if m := mount(cp); m.ReadOnly {
			t.Errorf("%s: the copy mounts the migrations read-only", where)
		}
		m := mount(sg)
		if !m.ReadOnly {
			t.Errorf("%s: schemagate mounts the migrations writable", where)
		}
		if m.Name != mount(cp).Name {
			t.Errorf("%s: the copy writes to %s, schemagate reads %s", where, mount(cp).Name, m.Name)
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.EmptyDir == nil {
				t.Errorf("%s: volume %s is %+v, want an emptyDir", where, v.Name, v.VolumeSource)
			}
		}
	}
}

// The helm test Pod runs `schemagate check` with the settings the Job has. extraArgs are not
// passed: they are flags of migrate, wait or serve, which check (a one-shot read) may not have.
func TestTestPodChecksWithTheJobSettings(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base, `{whenAhead: exit, timeout: 1m, database: {existingSecret: app-db, urlFile: true},
extraArgs: [--poll-interval, 1s], extraEnv: [{name: SCHEMAGATE_POLL_INTERVAL, value: 1s}]}`))
	job := container(t, one[*batchv1.Job](t, r).Spec.Template.Spec, "schemagate")
	pod := one[*corev1.Pod](t, r)
	if pod.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("test Pod annotations %v, want helm.sh/hook: test", pod.Annotations)
	}
	if pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("test Pod restartPolicy %q, want Never", pod.Spec.RestartPolicy)
	}
	check := container(t, pod.Spec, "schemagate")
	if !slices.Equal(check.Args, []string{"check"}) {
		t.Errorf("test Pod args %q, want [check]", check.Args)
	}
	if check.Image != job.Image {
		t.Errorf("test Pod image %q, Job image %q", check.Image, job.Image)
	}
	for _, e := range job.Env {
		if e.Name == "SCHEMAGATE_TIMEOUT" {
			continue // the test's own deadline (TestTestPodHasItsOwnDeadline)
		}
		got, ok := env(check, e.Name)
		if !ok || got.Value != e.Value {
			t.Errorf("test Pod %s=%+v, Job %+v", e.Name, got, e)
		}
	}
	if pod.Spec.ServiceAccountName != one[*batchv1.Job](t, r).Spec.Template.Spec.ServiceAccountName {
		t.Errorf("test Pod runs as %q, the Job as %q", pod.Spec.ServiceAccountName, one[*batchv1.Job](t, r).Spec.Template.Spec.ServiceAccountName)
	}
	if len(mustRender(t, chartDir, values(t, base, "tests: {enabled: false}")).objects) != 2 {
		t.Error("tests.enabled: false still renders the test Pod")
	}

	// In helmHook mode the chart's ServiceAccount is a hook, deleted once the hook succeeded;
	// a test Pod naming it would be refused by the API server.
	hook := one[*corev1.Pod](t, mustRender(t, chartDir, values(t, base, "mode: helmHook")))
	if hook.Spec.ServiceAccountName != "" {
		t.Errorf("helmHook: the test Pod runs as the hook ServiceAccount %q, gone after the hook", hook.Spec.ServiceAccountName)
	}
	own := one[*corev1.Pod](t, mustRender(t, chartDir, values(t, base, "{mode: helmHook, serviceAccount: {create: false, name: migrator}}")))
	if own.Spec.ServiceAccountName != "migrator" {
		t.Errorf("helmHook with an existing ServiceAccount: the test Pod runs as %q, want migrator", own.Spec.ServiceAccountName)
	}
}

// The helm test Pod does not wait for the migration's deadline: a database that does not
// answer fails `helm test` within tests.timeout (30s), with check's message, and a Pod that
// never runs check (an image it cannot pull) ends a minute later.
func TestTestPodHasItsOwnDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dir      string
		values   []string
		timeout  string
		deadline int64
	}{
		{"job default", chartDir, []string{base, "timeout: 45m"}, "30s", 90},
		{"job no timeout", chartDir, []string{base, "timeout: 0"}, "30s", 90},
		{"job tests.timeout", chartDir, []string{base, "{timeout: 45m, tests: {timeout: 2m30s}}"}, "2m30s", 210},
		{"job sub-second", chartDir, []string{base, "tests: {timeout: 1500ms}"}, "1500ms", 62},
		{"helmHook", chartDir, []string{base, "{mode: helmHook, timeout: 45m}"}, "30s", 90},
		{"snippets testPod", "", []string{"schemagate: {timeout: 20m}"}, "30s", 90},
		{"snippets tests.timeout", "", []string{"schemagate: {timeout: 20m, tests: {timeout: 1m}}"}, "1m", 120},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.dir
			if dir == "" {
				dir = example(t)
			}
			pod := one[*corev1.Pod](t, mustRender(t, dir, values(t, tc.values...)))
			if got := envValue(t, container(t, pod.Spec, "schemagate"), "SCHEMAGATE_TIMEOUT"); got != tc.timeout {
				t.Errorf("test Pod SCHEMAGATE_TIMEOUT=%q, want %q (tests.timeout, not the migration's)", got, tc.timeout)
			}
			if d := pod.Spec.ActiveDeadlineSeconds; d == nil || *d != tc.deadline {
				t.Errorf("test Pod activeDeadlineSeconds %v, want %d", d, tc.deadline)
			}
		})
	}
	for _, bad := range []string{"tests: {timeout: 0s}", "tests: {timeout: '30'}", "tests: {timeout: soon}"} {
		if _, err := render(chartDir, values(t, base, bad)); err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("%s: %v, want a refusal", bad, err)
		}
	}
}

func TestNotesSayHowToWatch(t *testing.T) {
	r := mustRender(t, chartDir, values(t, base))
	job := one[*batchv1.Job](t, r).Name
	for _, want := range []string{"kubectl -n prod logs -f job/" + job, "schemagate status", "helm test shop"} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
		}
	}
	hook := mustRender(t, chartDir, values(t, base, "mode: helmHook")).notes
	for _, want := range []string{"must exist before `helm install`", "--timeout", "Argo CD"} {
		if !strings.Contains(hook, want) {
			t.Errorf("helmHook NOTES.txt lacks %q:\n%s", want, hook)
		}
	}
	// Every failure code the Job can end with is explained, with the name package schemagate
	// gives it.
	for _, c := range schemagate.ExitCodes() {
		if c < schemagate.ExitInvalidInput {
			continue
		}
		if want := fmt.Sprintf("%d %s", c, c); !strings.Contains(r.notes, want) {
			t.Errorf("NOTES.txt does not explain exit code %q:\n%s", want, r.notes)
		}
	}
	if strings.Contains(r.notes, "--database-url") {
		t.Errorf("NOTES.txt puts the database URL on a command line (visible in ps):\n%s", r.notes)
	}
}

// Rendering refuses, with a message that says what to do, values that cannot work.
func TestChartRefusesBrokenValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"no database secret, job", []string{"mode: job"}, "database.existingSecret is required"},
		{"no database secret, helmHook", []string{"mode: helmHook"}, "database.existingSecret is required"},
		{"no database secret, urlFile", []string{"database: {urlFile: true}"}, "database.existingSecret is required"},
		{"raft in a Job", []string{base, "lock: raft"}, `lock: "raft" needs the replicas of a Deployment`},
		{"unready in a Job", []string{base, "whenAhead: unready"}, "whenAhead: unready applies to serve"},
		{"neverMigrate in a Job", []string{base, "neverMigrate: true"}, "leaves nobody to migrate"},
		{"no migrations image", []string{base, "migrations: {fromImage: {enabled: true}}"}, "migrations.fromImage.image.repository is required"},
		{"no image tag", []string{base, "migrations: {fromImage: {enabled: true, image: {repository: app}}}"}, "migrations.fromImage.image.tag is empty"},
		{"relative dir", []string{base, "migrations: {dir: db, fromImage: {enabled: true, image: {repository: app, tag: '1'}}}"}, "must be an absolute path"},
		{"unknown mode", []string{base, "mode: sidecar"}, "mode"},
		{"unknown whenAhead", []string{base, "whenAhead: maybe"}, "whenAhead"},
		{"unknown lock", []string{base, "lock: etcd"}, "lock"},
		{"unknown key", []string{base, "databse: {existingSecret: x}"}, "databse"},
		{"timeout without a unit", []string{base, "timeout: '90'"}, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(chartDir, values(t, tc.values...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("render: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// The chart has no value a database URL can be rendered from: a URL given anyway is refused,
// and the refusal does not repeat the password.
func TestChartRefusesDatabaseURLLiterals(t *testing.T) {
	for name, v := range map[string][]string{
		"database.url":           {base, "database: {existingSecret: app-db, url: '" + fakeURL + "'}"},
		"extraEnv literal":       {base, "extraEnv: [{name: SCHEMAGATE_DATABASE_URL, value: '" + fakeURL + "'}]"},
		"extraEnv DATABASE_URL":  {base, "extraEnv: [{name: DATABASE_URL, value: '" + fakeURL + "'}]"},
		"extraArgs database-url": {base, "extraArgs: ['--database-url=" + fakeURL + "']"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := render(chartDir, values(t, v...))
			if err == nil {
				t.Fatalf("rendered a database URL given as a literal:\n%s", r.text)
			}
			if strings.Contains(err.Error(), fakePassword) {
				t.Errorf("the error repeats the password: %v", err)
			}
		})
	}
}
