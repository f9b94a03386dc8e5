package main

import (
	"testing"

	"github.com/spf13/pflag"
)

// TestCompletionCoversEveryFlag: every flag that takes a value says how it completes, so that
// the shell never offers file names for a flag that takes no file.
func TestCompletionCoversEveryFlag(t *testing.T) {
	for _, cmd := range documented(testRoot()) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.NoOptDefVal != "" {
				return // a bool
			}
			if _, ok := cmd.GetFlagCompletionFunc(f.Name); !ok {
				t.Errorf("%s --%s: no completion registered (the shell would offer file names)", cmd.Name(), f.Name)
			}
		})
	}
}
