package main

import (
	"strings"
	"testing"
)

// TestRequirements: --require-env entries name variables, alone, in lists, or with a reason;
// a replica missing any is refused naming each and why, and one with every value passes.
func TestRequirements(t *testing.T) {
	env := map[string]string{"WEBUI_SECRET_KEY": "s3cr3t", "BLANK": "  "}
	getenv := func(k string) string { return env[k] }
	cases := []struct {
		entries []string
		want    string // "" for admitted; else the refusal's text, or "parse: …"
	}{
		{entries: []string{"WEBUI_SECRET_KEY"}},
		{entries: []string{"REDIS_URL=config changes sync through it, across replicas"},
			want: "require-env: REDIS_URL (config changes sync through it, across replicas) is not set or empty in this replica's environment; every replica must have it"},
		{entries: []string{"WEBUI_SECRET_KEY,BLANK,REDIS_URL"},
			want: "require-env: BLANK, REDIS_URL are not set or empty in this replica's environment; every replica must have them"},
		{entries: []string{"NOT A NAME"}, want: `parse: require-env: "NOT A NAME" is not a variable name`},
		{entries: []string{"=why"}, want: `parse: require-env: "" is not a variable name`},
	}
	for _, tc := range cases {
		reqs, err := parseRequirements(tc.entries)
		if err == nil {
			err = checkRequirements(reqs, getenv)
		} else {
			err = &parseError{err}
		}
		got := ""
		if err != nil {
			got = err.Error()
		}
		if tc.want == "" && got != "" || tc.want != "" && !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: %q, want %q", tc.entries, got, tc.want)
		}
	}
}

type parseError struct{ error }

func (e *parseError) Error() string { return "parse: " + e.error.Error() }
