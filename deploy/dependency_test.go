package deploy

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
)

// umbrella returns a parent chart that depends on charts/schemagate as `helm dependency build`
// leaves it: under alias (when not empty), enabled by condition (when not empty). Its one
// template is a Deployment whose pods include the snippets, with the values under the name the
// dependency has in the parent.
func umbrella(t *testing.T, alias, condition string) *chart.Chart {
	t.Helper()
	sg, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	key := "schemagate"
	if alias != "" {
		key = alias
	}
	deployment := `{{- $v := index .Values "` + key + `" }}
{{- if eq (toString (get $v "mode")) "snippets" }}
{{- $sg := dict "values" $v "context" $ "name" "app" }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      initContainers:
        {{- include "schemagate.initContainer" $sg | nindent 8 }}
      containers:
        - name: app
          image: registry.example/app:2.4.0
{{- end }}
`
	parent := &chart.Chart{
		Metadata: &chart.Metadata{
			APIVersion: chart.APIVersionV2, Name: "umbrella", Version: "0.1.0", AppVersion: "9.9.9",
			Dependencies: []*chart.Dependency{{
				Name: "schemagate", Version: "^" + sg.Metadata.Version, Alias: alias, Condition: condition,
			}},
		},
		Templates: []*chart.File{{Name: "templates/deployment.yaml", Data: []byte(deployment)}},
		Values:    map[string]any{},
	}
	parent.AddDependency(sg)
	return parent
}

// A parent chart may switch the dependency with `condition: schemagate.enabled`, and may name
// it with an alias; the schemagate image still defaults to the schemagate chart's appVersion,
// in the chart's own Job and in the snippets the parent includes.
func TestChartAsADependency(t *testing.T) {
	sg, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	want := "ghcr.io/schemagate/schemagate:" + sg.Metadata.AppVersion
	for _, tc := range []struct {
		name, alias, condition, values string
		job, deployment                bool
	}{
		{"condition, enabled", "", "schemagate.enabled", "schemagate: {enabled: true, database: {existingSecret: app-db}}", true, false},
		{"condition, disabled", "", "schemagate.enabled", "schemagate: {enabled: false, database: {existingSecret: app-db}}", false, false},
		{"alias, job", "migrations", "migrations.enabled", "migrations: {enabled: true, database: {existingSecret: app-db}}", true, false},
		{"alias, snippets", "gate", "", "gate: {mode: snippets, database: {existingSecret: app-db}}", false, true},
		{"snippets", "", "schemagate.enabled", "schemagate: {enabled: true, mode: snippets, database: {existingSecret: app-db}}", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renderChart(umbrella(t, tc.alias, tc.condition), values(t, tc.values), kubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			jobs, deployments := all[*batchv1.Job](r), all[*appsv1.Deployment](r)
			if (len(jobs) == 1) != tc.job || (len(deployments) == 1) != tc.deployment {
				t.Fatalf("rendered %v; want a Job: %v, a Deployment: %v", r.kinds(), tc.job, tc.deployment)
			}
			for where, spec := range r.podSpecs() {
				if got := container(t, spec, "schemagate").Image; got != want {
					t.Errorf("%s: image %q, want %q (the schemagate chart's appVersion)", where, got, want)
				}
			}
			if tc.job && !strings.HasPrefix(jobs[0].Name, releaseName+"-") {
				t.Errorf("Job %s", jobs[0].Name)
			}
		})
	}
}
