package deploy

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// helm lint, through Helm's own lint package: the charts with their defaults and with every
// file in charts/schemagate/ci. Errors fail the test; warnings and notes are printed.
func TestHelmLint(t *testing.T) {
	ciFiles, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(ciFiles) == 0 {
		t.Fatalf("no values in %s/ci: %v", chartDir, err)
	}
	type run struct{ name, dir, valuesFile string }
	runs := []run{{"schemagate defaults", chartDir, ""}, {"chart-app defaults", example(t), ""}}
	for _, f := range ciFiles {
		runs = append(runs, run{"schemagate " + filepath.Base(f), chartDir, f})
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			vals := map[string]any{}
			if r.valuesFile != "" {
				v, err := chartutil.ReadValuesFile(r.valuesFile)
				if err != nil {
					t.Fatal(err)
				}
				vals = v.AsMap()
				// The ci values must also render for real, not only in lint mode, which lets
				// `required` and `fail` pass.
				checkRendering(t, mustRender(t, r.dir, vals))
			}
			kv, err := chartutil.ParseKubeVersion(kubeVersion)
			if err != nil {
				t.Fatal(err)
			}
			result := lint.AllWithKubeVersion(r.dir, vals, namespace, kv)
			for _, m := range result.Messages {
				if m.Severity >= support.ErrorSev {
					t.Errorf("lint: %s", m)
				} else {
					t.Logf("lint: %s", m)
				}
			}
		})
	}
}
