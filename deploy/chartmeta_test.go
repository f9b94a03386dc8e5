package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"
)

// Chart.yaml carries what Artifact Hub shows: an icon, maintainers, and annotations that
// parse and agree with the chart (the image at appVersion, the license of the repository).
func TestChartMetadata(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	md := ch.Metadata
	const raw = "https://raw.githubusercontent.com/schemagate/schemagate/main/"
	if !strings.HasPrefix(md.Icon, raw) {
		t.Errorf("icon %q, want a file of the repository under %s", md.Icon, raw)
	} else if _, err := os.Stat(filepath.Join("..", strings.TrimPrefix(md.Icon, raw))); err != nil {
		t.Errorf("icon %s: no such file in the repository: %v", md.Icon, err)
	}
	if len(md.Maintainers) == 0 || md.Maintainers[0].Name == "" {
		t.Errorf("maintainers %+v", md.Maintainers)
	}
	a := md.Annotations
	license, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if a["artifacthub.io/license"] != "Apache-2.0" || !strings.Contains(string(license), "Apache License") {
		t.Errorf("artifacthub.io/license %q; the repository's LICENSE is another", a["artifacthub.io/license"])
	}
	var images []struct{ Name, Image string }
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/images"]), &images); err != nil {
		t.Fatalf("artifacthub.io/images: %v", err)
	}
	job := one[*batchv1.Job](t, mustRender(t, chartDir, values(t, base)))
	if len(images) != 1 || images[0].Image != container(t, job.Spec.Template.Spec, "schemagate").Image ||
		images[0].Image != "ghcr.io/schemagate/schemagate:"+md.AppVersion {
		t.Errorf("artifacthub.io/images %+v, want the image the chart runs by default, at appVersion %s", images, md.AppVersion)
	}
	var links []struct{ Name, URL string }
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/links"]), &links); err != nil || len(links) == 0 {
		t.Fatalf("artifacthub.io/links: %v %+v", err, links)
	}
	for _, l := range links {
		const blob = "https://github.com/schemagate/schemagate/blob/main/"
		if !strings.HasPrefix(l.URL, blob) {
			t.Errorf("link %s: %s, want a file of the repository", l.Name, l.URL)
		} else if _, err := os.Stat(filepath.Join("..", strings.TrimPrefix(l.URL, blob))); err != nil {
			t.Errorf("link %s: %v", l.Name, err)
		}
	}
	var changes []struct{ Kind, Description string }
	if err := yaml.UnmarshalStrict([]byte(a["artifacthub.io/changes"]), &changes); err != nil || len(changes) == 0 {
		t.Fatalf("artifacthub.io/changes: %v %+v", err, changes)
	}
	for _, c := range changes {
		if !slices.Contains([]string{"added", "changed", "deprecated", "removed", "fixed", "security"}, c.Kind) || c.Description == "" {
			t.Errorf("artifacthub.io/changes entry %+v", c)
		}
	}
}

// `helm show readme` prints the chart's README: it is packaged, every value its table names is
// a value of the chart, and its links work where it is read (Artifact Hub, a terminal), away
// from the repository: no relative ones.
func TestChartReadme(t *testing.T) {
	ch, err := loader.Load(chartDir) // .helmignore applied, as in the package
	if err != nil {
		t.Fatal(err)
	}
	var readme string
	for _, f := range ch.Files { // helm show readme's rule
		if slices.ContainsFunc([]string{"readme.md", "readme.txt", "readme"}, func(n string) bool { return strings.EqualFold(f.Name, n) }) {
			readme = string(f.Data)
			break
		}
	}
	if !strings.HasPrefix(readme, "# schemagate\n") {
		t.Fatalf("helm show readme printed %.200q", readme)
	}
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	valuePaths("", vals.AsMap(), paths)
	_, table, _ := strings.Cut(readme, "| value | default | meaning |")
	rows := regexp.MustCompile("(?m)^\\| `([a-zA-Z.]+)` \\|").FindAllStringSubmatch(table, -1)
	if len(rows) < 5 {
		t.Fatalf("the README's values table has %d rows", len(rows))
	}
	for _, m := range rows {
		if !paths[m[1]] {
			t.Errorf("the README names %s, which is no value of the chart", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`\]\(([^)]+)\)`).FindAllStringSubmatch(readme, -1) {
		if !strings.HasPrefix(m[1], "https://") {
			t.Errorf("README link %q is relative: it breaks outside the repository", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`--version (\S+)`).FindAllStringSubmatch(readme, -1) {
		if m[1] != ch.Metadata.Version {
			t.Errorf("the README installs --version %s; the chart is %s", m[1], ch.Metadata.Version)
		}
	}
	for _, want := range []string{"job", "helmHook", "snippets", "database.existingSecret", "ttlSecondsAfterFinished"} {
		if !strings.Contains(readme, want) {
			t.Errorf("the README does not mention %s", want)
		}
	}
}
