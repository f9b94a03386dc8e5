package main

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"
)

// TestHelpGroupsEverySharedFlag: every flag several commands share is listed under a heading of
// its own in --help, so that a new one does not land among a command's own flags.
func TestHelpGroupsEverySharedFlag(t *testing.T) {
	shared := append(flagNames(addGateFlags), flagNames(addWaitFlags)...)
	shared = append(shared, flagNames(addRerunFlag)...)
	for _, cmd := range documented(testRoot()) {
		if cmd.Flags().Lookup("database-url") == nil {
			continue // no gate settings: probe's --timeout is its own
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if slices.Contains(shared, f.Name) && len(f.Annotations[groupAnnotation]) == 0 {
				t.Errorf("%s --%s: no heading in --help", cmd.Name(), f.Name)
			}
		})
	}
}
