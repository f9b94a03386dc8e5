package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// loader reads settings with the precedence flags > environment (SCHEMAGATE_*) > config file >
// defaults, and parses every value strictly: a value that does not parse is an error naming the
// key, never a silent zero.
type loader struct {
	v     *viper.Viper
	flags *pflag.FlagSet
	// fileKeys are the keys the config file sets.
	fileKeys map[string]bool
}

// given reports whether key was set at all (a flag, its environment variable, the config
// file), rather than left at its default.
func (l *loader) given(key string) bool {
	env := "SCHEMAGATE_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
	return l.flags.Changed(key) || os.Getenv(env) != "" || l.fileKeys[key]
}

// newLoader binds the flags of cmd, the environment and, when --config (or SCHEMAGATE_CONFIG)
// names one, a config file. A key in the file that no command takes is an error: a typo must
// not silently fall back to a default.
func newLoader(cmd *cobra.Command) (*loader, error) {
	flags := cmd.Flags()
	v := viper.New()
	v.SetEnvPrefix("SCHEMAGATE")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if err := v.BindPFlags(flags); err != nil {
		return nil, err
	}
	l := &loader{v: v, flags: flags}
	path := ""
	if flags.Lookup("config") != nil { // probe takes no config file, whatever SCHEMAGATE_CONFIG says
		path = l.string("config")
	}
	if path == "" {
		return l, nil
	}
	file := viper.New()
	file.SetConfigFile(path)
	if err := file.ReadInConfig(); err != nil {
		var notFound *os.PathError
		if errors.As(err, &notFound) {
			return nil, fmt.Errorf("config: %s does not exist", path)
		}
		return nil, fmt.Errorf("config: %s: %s", filepath.Base(path), oneLine(err.Error()))
	}
	// One file may serve every command (a ConfigMap mounted into the sidecar and the Job): a
	// key another command takes is ignored here; a key no command takes is a typo.
	// The tree that runs may hold this command alone (rootCommandFor): the keys come from all.
	known := configKeys(newApp(io.Discard, io.Discard).rootCommand())
	for _, key := range file.AllKeys() {
		if !known[key] {
			return nil, fmt.Errorf("config: %s: unknown key %q", filepath.Base(path), key)
		}
	}
	l.fileKeys = map[string]bool{}
	for _, key := range file.AllKeys() {
		l.fileKeys[key] = true
	}
	if err := v.MergeConfigMap(file.AllSettings()); err != nil {
		return nil, fmt.Errorf("config: %s: %s", filepath.Base(path), oneLine(err.Error()))
	}
	return l, nil
}

// configKeys are the keys a config file may hold: the flags of every command under root that
// reads one (probe does not: a key only it had would be read by nothing), but config itself.
func configKeys(root *cobra.Command) map[string]bool {
	keys := map[string]bool{}
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Flags().Lookup("config") != nil {
			cmd.Flags().VisitAll(func(f *pflag.Flag) { keys[f.Name] = true })
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	delete(keys, "config") // a config file cannot name another
	return keys
}

// takes reports whether the command reads key: it has the flag, and not only as one it accepts
// and ignores (see abilities.reads).
func (l *loader) takes(key string) bool {
	f := l.flags.Lookup(key)
	return f != nil && f.Annotations[ignoredAnnotation] == nil
}

func (l *loader) string(key string) string {
	v := l.v.Get(key)
	if v == nil {
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(v))
}

// durationInto is a duration setting and where its value goes.
type durationInto struct {
	key string
	dst *time.Duration
}

// durations reads each setting into its destination, stopping at the first error.
func (l *loader) durations(settings ...durationInto) error {
	for _, f := range settings {
		d, err := l.duration(f.key)
		if err != nil {
			return err
		}
		*f.dst = d
	}
	return nil
}

func (l *loader) duration(key string) (time.Duration, error) {
	switch raw := l.v.Get(key).(type) {
	case time.Duration:
		return raw, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration (write it with a unit: 500ms, 30s, 15m, 1h)", key, raw)
		}
		return d, nil
	default:
		return 0, fmt.Errorf("%s: %v is not a duration (write it with a unit: 500ms, 30s, 15m, 1h)", key, raw)
	}
}

func (l *loader) int(key string) (int64, error) {
	switch raw := l.v.Get(key).(type) {
	case int:
		return int64(raw), nil
	case int64:
		return raw, nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a whole number", key, raw)
		}
		return n, nil
	default:
		return 0, fmt.Errorf("%s: %v is not a whole number", key, raw)
	}
}

func (l *loader) bool(key string) (bool, error) {
	switch raw := l.v.Get(key).(type) {
	case bool:
		return raw, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return false, fmt.Errorf("%s: %q is not true or false", key, raw)
		}
		return b, nil
	default:
		return false, fmt.Errorf("%s: %v is not true or false", key, raw)
	}
}

func (l *loader) oneOf(key string, allowed ...string) (string, error) {
	s := l.string(key)
	if !slices.Contains(allowed, s) {
		return "", fmt.Errorf("%s: %q must be one of %s", key, s, strings.Join(allowed, ", "))
	}
	return s, nil
}

// keyValues reads a repeatable KEY=VALUE flag.
func (l *loader) keyValues(key string) ([]string, error) {
	entries := l.entries(key)
	for _, e := range entries {
		k, _, ok := strings.Cut(e, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, fmt.Errorf("%s: %q must be KEY=VALUE", key, e)
		}
	}
	return entries, nil
}

// entries reads a repeatable flag as given, unchecked; through the environment or a config
// file, a string takes entries separated by commas.
func (l *loader) entries(key string) []string {
	var entries []string
	switch raw := l.v.Get(key).(type) {
	case []string:
		entries = raw
	case string:
		if raw != "" {
			entries = strings.Split(raw, ",")
		}
	case []any:
		for _, e := range raw {
			entries = append(entries, fmt.Sprint(e))
		}
	}
	return entries
}

// oneLine squeezes a multi-line message onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
