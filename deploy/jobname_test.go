package deploy

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	batchv1 "k8s.io/api/batch/v1"
)

// The API server refuses to change a Job's pod template or podFailurePolicy ("field is
// immutable"). In job mode the Job's name therefore changes with every value that reaches
// them, and with the chart version; the same values keep the name, and with it the finished
// Job.

// jobName renders charts/schemagate in job mode and returns the Job's name.
func jobName(t *testing.T, extra ...string) string {
	t.Helper()
	return one[*batchv1.Job](t, mustRender(t, chartDir, values(t, append([]string{base}, extra...)...))).Name
}

func TestJobNameFollowsItsPodTemplate(t *testing.T) {
	pattern := regexp.MustCompile(`^shop-schemagate-migrate-[0-9a-f]{8}$`)
	first := jobName(t, "image: {tag: 1.0.0}")
	if !pattern.MatchString(first) {
		t.Errorf("Job name %q, want %s", first, pattern)
	}
	if again := jobName(t, "image: {tag: 1.0.0}"); again != first {
		t.Errorf("the same values gave %q, then %q: a plain re-run must keep the finished Job", first, again)
	}
	fromImage := "migrations: {fromImage: {enabled: true, image: {repository: app, tag: '%s'}}}"
	seen := map[string]string{first: "tag 1.0.0"}
	for what, extra := range map[string]string{
		"tag 1.0.1":          "image: {tag: 1.0.1}",
		"a digest":           `image: {tag: 1.0.0, digest: "sha256:` + strings.Repeat("1a", 32) + `"}`,
		"a registry":         "image: {tag: 1.0.0, registry: mirror.example}",
		"a checksum":         "{image: {tag: 1.0.0}, migrations: {checksum: 9f86d081}}",
		"another checksum":   "{image: {tag: 1.0.0}, migrations: {checksum: 2c26b46b}}",
		"migrations app:1":   "image: {tag: 1.0.0}\n" + strings.ReplaceAll(fromImage, "%s", "1"),
		"migrations app:2":   "image: {tag: 1.0.0}\n" + strings.ReplaceAll(fromImage, "%s", "2"),
		"logLevel debug":     "{image: {tag: 1.0.0}, logLevel: debug}",
		"resources":          "{image: {tag: 1.0.0}, resources: {requests: {cpu: 20m, memory: 32Mi}, limits: {memory: 128Mi}}}",
		"an env entry":       "{image: {tag: 1.0.0}, extraEnv: [{name: SCHEMAGATE_POLL_INTERVAL, value: 1s}]}",
		"another env value":  "{image: {tag: 1.0.0}, extraEnv: [{name: SCHEMAGATE_POLL_INTERVAL, value: 2s}]}",
		"extraArgs":          "{image: {tag: 1.0.0}, extraArgs: [--progress-interval, 10s]}",
		"a nodeSelector":     "{image: {tag: 1.0.0}, nodeSelector: {kubernetes.io/os: linux}}",
		"a pod annotation":   "{image: {tag: 1.0.0}, podAnnotations: {team: db}}",
		"a service account":  "{image: {tag: 1.0.0}, serviceAccount: {create: false, name: migrator}}",
		"a common label":     "{image: {tag: 1.0.0}, commonLabels: {team: db}}",
		"whenAhead exit":     "{image: {tag: 1.0.0}, whenAhead: exit}",
		"a pull secret":      "{image: {tag: 1.0.0}, imagePullSecrets: [{name: regcred}]}",
		"a sidecar":          "{image: {tag: 1.0.0}, sidecars: [{name: proxy, image: 'proxy:1'}]}",
		"a priority class":   "{image: {tag: 1.0.0}, priorityClassName: db}",
		"a security context": "{image: {tag: 1.0.0}, podSecurityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}}",
	} {
		got := jobName(t, extra)
		if prev, ok := seen[got]; ok {
			t.Errorf("%s and %s both make the Job %s: the upgrade between them would hit \"field is immutable\"", what, prev, got)
		}
		seen[got] = what
	}
	if long := jobName(t, "fullnameOverride: "+strings.Repeat("x", 70)); len(long) > 63 {
		t.Errorf("Job name %q is %d characters, over 63", long, len(long))
	}
}

// A new chart version makes a new Job even with the same values: its pod template carries the
// chart label, and the chart's templates may render it differently.
func TestJobNameFollowsTheChartVersion(t *testing.T) {
	name := func(version string) string {
		t.Helper()
		ch, err := loader.Load(chartDir)
		if err != nil {
			t.Fatal(err)
		}
		ch.Metadata.Version = version
		r, err := renderChart(ch, values(t, base, "image: {tag: 1.0.0}"), kubeVersion)
		if err != nil {
			t.Fatal(err)
		}
		return one[*batchv1.Job](t, r).Name
	}
	if a, b := name("1.0.0"), name("1.0.1"); a == b {
		t.Errorf("chart 1.0.0 and 1.0.1 both make the Job %s", a)
	}
	if a, b := name("1.0.1"), name("1.0.1"); a != b {
		t.Errorf("chart 1.0.1 made %s, then %s", a, b)
	}
}

// Over every variant the chart is tested with: two renderings have the same Job name exactly
// when their Jobs' immutable parts are the same.
func TestJobNameIsOneToOneWithTheImmutableParts(t *testing.T) {
	byName := map[string]string{}
	byParts := map[string]string{}
	for _, v := range chartVariants {
		for _, j := range all[*batchv1.Job](mustRender(t, chartDir, values(t, v.values...))) {
			if j.Annotations["helm.sh/hook"] != "" {
				continue // a hook keeps one name on purpose
			}
			b, err := json.Marshal([]any{j.Spec.Template, j.Spec.PodFailurePolicy})
			if err != nil {
				t.Fatal(err)
			}
			parts := string(b)
			if prev, ok := byName[j.Name]; ok && prev != parts {
				t.Errorf("%s: the Job %s has another pod template than a variant before it", v.name, j.Name)
			}
			if prev, ok := byParts[parts]; ok && prev != j.Name {
				t.Errorf("%s: the same pod template is named %s and %s", v.name, prev, j.Name)
			}
			byName[j.Name], byParts[parts] = parts, j.Name
		}
	}
	if len(byName) < 5 {
		t.Fatalf("only %d distinct Jobs among the variants", len(byName))
	}
}

// Fields the API server lets a Job change keep its name: changing them must not run the
// migration again.
func TestJobNameIgnoresWhatAJobMayChange(t *testing.T) {
	first := jobName(t)
	for _, extra := range []string{
		"job: {backoffLimit: 2}",
		"job: {activeDeadlineSeconds: 7200}",
		"job: {ttlSecondsAfterFinished: 86400}",
		"job: {annotations: {argocd.argoproj.io/sync-wave: '-1'}}",
		"commonAnnotations: {team: db}",
		"tests: {enabled: false}",
	} {
		if got := jobName(t, extra); got != first {
			t.Errorf("%s renames the Job %s to %s and runs it again", extra, first, got)
		}
	}
}

// With a TTL, NOTES.txt says what it costs: the Job comes back, under Argo CD as well.
func TestNotesWarnAboutTheJobTTL(t *testing.T) {
	if notes := mustRender(t, chartDir, values(t, base)).notes; strings.Contains(notes, "ttlSecondsAfterFinished") {
		t.Errorf("NOTES.txt warns about a TTL that is not set:\n%s", notes)
	}
	notes := mustRender(t, chartDir, values(t, base, "job: {ttlSecondsAfterFinished: 600}")).notes
	for _, want := range []string{"ttlSecondsAfterFinished", "Argo CD", "OutOfSync"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES.txt with a TTL lacks %q:\n%s", want, notes)
		}
	}
}
