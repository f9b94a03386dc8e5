package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chartutil"
)

const helmDoc = "../docs/helm.md"

// tableKeys returns the first cells of the table rows under the heading of docs/helm.md that
// are a code span: "| `image.tag` | ..." gives image.tag.
func tableKeys(t *testing.T, heading string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(helmDoc)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s has no heading %q", helmDoc, heading)
	}
	// The section ends at the next heading of the same level or above.
	level := strings.Index(heading, " ")
	if loc := regexp.MustCompile(fmt.Sprintf(`(?m)^#{1,%d} `, level)).FindStringIndex(section); loc != nil {
		section = section[:loc[0]]
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|").FindAllStringSubmatch(section, -1) {
		keys[m[1]] = true
	}
	if len(keys) == 0 {
		t.Fatalf("%s: no table under %q", helmDoc, heading)
	}
	return keys
}

// valuePaths returns every key path of a values tree: a.b.c, and a.b and a for its parents.
func valuePaths(prefix string, v map[string]any, out map[string]bool) {
	for k, child := range v {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out[p] = true
		if m, ok := child.(map[string]any); ok {
			valuePaths(p, m, out)
		}
	}
}

// Every value of charts/schemagate is in docs/helm.md's values table (itself, or a parent such
// as sidecar.startupProbe for its fields), and every key the docs list is a value.
func TestHelmDocListsEveryValue(t *testing.T) {
	vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	valuePaths("", vals.AsMap(), paths)
	documented := tableKeys(t, "## Values")

	var missing []string
	for p := range paths {
		covered := false
		for q := p; q != ""; {
			if documented[q] {
				covered = true
				break
			}
			i := strings.LastIndex(q, ".")
			if i < 0 {
				break
			}
			q = q[:i]
		}
		// A parent needs no row of its own when its children have theirs.
		hasChild := false
		for d := range documented {
			if strings.HasPrefix(d, p+".") {
				hasChild = true
			}
		}
		if !covered && !hasChild {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("%s: value %s is not in the values table", helmDoc, p)
	}
	for d := range documented {
		if !paths[d] {
			t.Errorf("%s documents %s, which is no value of the chart", helmDoc, d)
		}
	}
}

// Every named template the example chart includes is documented, and so is every key of the
// dict the templates read.
func TestHelmDocListsTheTemplatesAndTheirArguments(t *testing.T) {
	documented := tableKeys(t, "### The templates")
	used := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(exampleDir, "templates"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range regexp.MustCompile(`include "(schemagate\.[A-Za-z]+)"`).FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(used) == 0 {
		t.Fatal("the example chart includes no schemagate template")
	}
	for name := range used {
		if !documented[name] {
			t.Errorf("the example chart includes %s, which %s does not document", name, helmDoc)
		}
	}

	b, err := os.ReadFile(filepath.Join(chartDir, "templates", "_snippets.tpl"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"values", "context"}
	for _, m := range regexp.MustCompile(`get \. "([A-Za-z]+)"`).FindAllStringSubmatch(string(b), -1) {
		keys = append(keys, m[1])
	}
	for _, k := range keys {
		if !documented[k] {
			t.Errorf("the snippets read the key %q of their dict, which %s does not document", k, helmDoc)
		}
	}
}

// docs/swarm-compose.md states the example stack's deadlines; they must be the stack's.
func TestSwarmDocStatesTheStacksDeadlines(t *testing.T) {
	b, err := os.ReadFile("../docs/swarm-compose.md")
	if err != nil {
		t.Fatal(err)
	}
	p := loadProject(t, stackFile, "app", nil)
	minutes := func(d time.Duration) string { return fmt.Sprintf("%dm", int(d.Minutes())) }
	want := map[string]string{}
	for _, name := range []string{"migrate", "web"} {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		d, err := time.ParseDuration(envOf(s, "SCHEMAGATE_TIMEOUT"))
		if err != nil {
			t.Fatalf("%s SCHEMAGATE_TIMEOUT: %v", name, err)
		}
		want["`SCHEMAGATE_TIMEOUT` on `"+name+"`"] = minutes(d)
		if s.HealthCheck != nil && s.HealthCheck.StartPeriod != nil {
			want["`healthcheck.start_period` on `"+name+"`"] = minutes(time.Duration(*s.HealthCheck.StartPeriod))
		}
	}
	if len(want) != 3 {
		t.Fatalf("found %v in the stack, want both deadlines and the web start_period", want)
	}
	for setting, value := range want {
		if row := "| " + setting + " | " + value + " |"; !strings.Contains(string(b), row) {
			t.Errorf("docs/swarm-compose.md lacks the row %q", row)
		}
	}
}
