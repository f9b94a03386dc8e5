package main

import (
	"fmt"
	"regexp"
	"strings"
)

// requirement is a variable every replica must have with a non-empty value (--require-env),
// and why, when the caller said.
type requirement struct {
	name string
	why  string
}

// variableName is what a shell and Kubernetes accept as an environment variable's name.
var variableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// parseRequirements reads --require-env entries: "NAME", "NAME,NAME…", or "NAME=why" (one
// variable, and a reason that may hold commas on the command line; through the environment
// or a config file, entries are separated by commas).
func parseRequirements(entries []string) ([]requirement, error) {
	var reqs []requirement
	for _, e := range entries {
		if name, why, ok := strings.Cut(e, "="); ok {
			reqs = append(reqs, requirement{name: strings.TrimSpace(name), why: strings.TrimSpace(why)})
			continue
		}
		for _, name := range strings.Split(e, ",") {
			reqs = append(reqs, requirement{name: strings.TrimSpace(name)})
		}
	}
	for _, r := range reqs {
		if !variableName.MatchString(r.name) {
			return nil, fmt.Errorf("require-env: %q is not a variable name (NAME, NAME,NAME… or NAME=why)", r.name)
		}
	}
	return reqs, nil
}

// checkRequirements refuses a replica without a non-empty value for any of reqs, naming every
// missing variable and why it matters. It reads nothing but the environment.
func checkRequirements(reqs []requirement, getenv func(string) string) error {
	var missing []string
	for _, r := range reqs {
		if strings.TrimSpace(getenv(r.name)) != "" {
			continue
		}
		m := r.name
		if r.why != "" {
			m += " (" + r.why + ")"
		}
		missing = append(missing, m)
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("require-env: %s is not set or empty in this replica's environment; every replica must have it", missing[0])
	}
	return fmt.Errorf("require-env: %s are not set or empty in this replica's environment; every replica must have them",
		strings.Join(missing, ", "))
}
