package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
	"github.com/schemagate/schemagate/engine/command"
)

func (a *app) installCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install DEST",
		Short: "Copy this binary to DEST (a file, or a directory to put schemagate in)",
		Long: `install copies the running schemagate binary to DEST, for an init container that puts it into a
volume shared with an app image that has no schemagate (and often no shell):

  initContainers:
    - name: install-schemagate
      image: ghcr.io/schemagate/schemagate
      args: ["install", "/schemagate/bin"]
      volumeMounts: [{name: schemagate-bin, mountPath: /schemagate/bin}]

The app container then runs /schemagate/bin/schemagate exec -- its own command. DEST may be a
directory (the file is DEST/schemagate) or a file path; the copy is written beside it and
renamed into place, so a reader never sees half a binary.`,
		Example: examples(
			"# An init container: put schemagate into a volume the app container mounts",
			"schemagate install /schemagate/bin",
			"schemagate install /usr/local/bin/schemagate"),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return &usageError{err: errors.New("install takes one argument: the destination file or directory")}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			dest, err := install(args[0])
			if err != nil {
				return &usageError{err: err}
			}
			fmt.Fprintf(a.stdout, "installed %s\n", dest)
			return nil
		},
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "copied"},
		exit{schemagate.ExitInvalidInput, "DEST cannot be written, or not exactly one DEST given"})
	return cmd
}

// install copies the running executable to dest (dest/schemagate when dest is a directory)
// through a temporary file in the same directory and a rename.
func install(dest string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("install: cannot find this binary: %v", err)
	}
	if info, err := os.Stat(dest); err == nil && info.IsDir() {
		dest = filepath.Join(dest, "schemagate")
	}
	dir := filepath.Dir(dest)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return "", fmt.Errorf("install: %s is not a directory", dir)
	}
	src, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("install: cannot read this binary: %s", describeFileError(err))
	}
	defer src.Close()
	tmp, err := os.CreateTemp(dir, ".schemagate-*")
	if err != nil {
		return "", fmt.Errorf("install: cannot write to %s: %s", dir, describeFileError(err))
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a partial copy otherwise
	_, err = io.Copy(tmp, src)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dest)
	}
	if err != nil {
		return "", fmt.Errorf("install: cannot write %s: %s", dest, describeFileError(err))
	}
	return dest, nil
}

// reapCommand is the hidden process between a migrator and its migrate command (see
// command.Reap).
func (a *app) reapCommand() *cobra.Command {
	return &cobra.Command{
		Use:                command.ReapCommand + " -- COMMAND [ARGS...]",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			os.Exit(command.Reap(args))
			return nil
		},
	}
}
