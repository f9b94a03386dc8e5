// Package schemagate holds what every part of schemagate shares: the exit codes a replica ends
// with, so that orchestrators (Kubernetes Job podFailurePolicy, Swarm restart policies, CI
// scripts) can branch on them, how an error decides its code (ExitCodeOf), and the build's
// version.
//
// The flow itself lives in package coordinator, the election backends in package lock and its
// subpackages, the migration engines in package engine, and the command line in cmd/schemagate.
package schemagate

import "runtime/debug"

// Version is the release this binary was built from. Release builds and `make build` stamp it
// with -ldflags "-X github.com/schemagate/schemagate.Version=v1.2.3"; a binary built without
// that (`go install github.com/schemagate/schemagate/cmd/schemagate@v1.2.3`) reads it from its
// build info, and one built from a checkout without version control information says "dev".
var Version string

// modulePath is the module whose version a binary reports when nothing stamped it.
const modulePath = "github.com/schemagate/schemagate"

// The linker's -X can only set a variable initialized to a constant, so the fallback to the
// build info runs here, before anything reads Version.
func init() {
	info, ok := debug.ReadBuildInfo()
	Version = version(Version, info, ok)
}

// version is what a binary reports: stamped when -ldflags set it, else the version of this
// module in the build info (the main module for `go install …@v1.2.3`, a dependency when
// another program imports it), else "dev".
func version(stamped string, info *debug.BuildInfo, ok bool) string {
	if stamped != "" {
		return stamped
	}
	if !ok || info == nil {
		return "dev"
	}
	m := &info.Main
	if m.Path != modulePath {
		m = nil
		for _, d := range info.Deps {
			if d.Path == modulePath {
				m = d
				break
			}
		}
	}
	switch {
	case m == nil, m.Version == "", m.Version == "(devel)":
		return "dev"
	case m.Replace != nil && m.Replace.Version == "":
		// Replaced by a directory: the version in go.mod is a placeholder.
		return "dev"
	case m.Replace != nil:
		return m.Replace.Version
	}
	return m.Version
}
