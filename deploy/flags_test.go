package deploy

import (
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// Every SCHEMAGATE_<FLAG> variable the charts give a schemagate container is a flag of the
// command that container runs: a value the binary does not know would be ignored in silence.
// (extraEnv is the user's, and documented as read only by the commands that have the flag.)
func TestChartSettingsAreFlagsOfTheirCommand(t *testing.T) {
	byCommand := map[string]map[string]bool{}
	collect := func(r *rendering) {
		extra := map[string]bool{}
		if list, ok := r.chartValues("schemagate")["extraEnv"].([]any); ok {
			for _, e := range list {
				if m, ok := e.(map[string]any); ok {
					extra[m["name"].(string)] = true
				}
			}
		}
		for _, spec := range r.podSpecs() {
			for _, c := range containers(spec) {
				if c.Name != "schemagate" || len(c.Args) == 0 {
					continue
				}
				cmd := c.Args[0]
				if byCommand[cmd] == nil {
					byCommand[cmd] = map[string]bool{}
				}
				for _, e := range c.Env {
					if name, ok := strings.CutPrefix(e.Name, "SCHEMAGATE_"); ok && !extra[e.Name] {
						byCommand[cmd][name] = true
					}
				}
			}
		}
	}
	for _, v := range chartVariants {
		collect(mustRender(t, chartDir, values(t, v.values...)))
	}
	for _, v := range exampleVariants {
		collect(mustRender(t, example(t), values(t, v.values...)))
	}
	for _, cmd := range []string{"migrate", "wait", "serve", "check"} {
		if len(byCommand[cmd]) == 0 {
			t.Errorf("no rendering runs %s", cmd)
		}
	}
	bin := buildImageBinary(t, t.TempDir())
	for cmd, names := range byCommand {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --help: %v\n%s", cmd, err, out)
		}
		var sorted []string
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		for _, n := range sorted {
			flag := "--" + strings.ReplaceAll(strings.ToLower(n), "_", "-")
			if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(flag) + `\b`).Match(out) {
				t.Errorf("%s gets SCHEMAGATE_%s, but has no flag %s", cmd, n, flag)
			}
		}
	}
}
