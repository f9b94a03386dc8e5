package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/schemagate/schemagate/internal/fleet"
)

// gooseFile is the name fleet.MigrationSet gives a migration: NNNNN_step_N.sql.
var gooseFile = regexp.MustCompile(`^(\d+)_(\w+)\.sql$`)

// migrateDir writes set for golang-migrate into a fresh directory under the work dir: each
// goose file's Up section, unchanged, as NNNNN_step_N.up.sql. There are no down files; the
// benchmark never migrates down.
func (b *bench) migrateDir(name string, set fleet.MigrationSet) (string, error) {
	src, err := b.migrationDir(name+"-goose", set)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(b.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		m := gooseFile.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return "", err
		}
		up, err := upSection(string(data))
		if err != nil {
			return "", fmt.Errorf("%s: %w", e.Name(), err)
		}
		if err := os.WriteFile(filepath.Join(dir, m[1]+"_"+m[2]+".up.sql"), []byte(up), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// upSection returns what lies between "-- +goose Up" and "-- +goose Down".
func upSection(file string) (string, error) {
	if strings.Contains(file, "+goose NO TRANSACTION") || strings.Contains(file, "+goose StatementBegin") {
		return "", fmt.Errorf("only plain transactional migrations can be translated")
	}
	_, up, ok := strings.Cut(file, "-- +goose Up\n")
	if !ok {
		return "", fmt.Errorf("no -- +goose Up")
	}
	up, _, _ = strings.Cut(up, "-- +goose Down")
	return up, nil
}
