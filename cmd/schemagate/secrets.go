package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Secrets: where the settings that hold one come from (a flag, its variable, or a file a
// Kubernetes or Docker secret is mounted as), and which strings every output must be scrubbed
// of.

// secretsIn finds the secrets the settings hold, whether the command reads the setting or not
// (a sidecar's environment serves every command): the database password, the values of
// --migrate-env that look secret or hold a password, and the Raft secret. A secret read from a
// file (--raft-secret-file) is added by whatever reads it.
func secretsIn(l *loader, dsn string) []string {
	out := append(secretsOf(dsn), secretValues(l.entries("migrate-env"))...)
	if s := l.string("raft-secret"); s != "" {
		out = append(out, s)
	}
	return out
}

// databaseURL finds the database URL: --database-url (SCHEMAGATE_DATABASE_URL), or the file
// --database-url-file names, or DATABASE_URL.
func databaseURL(l *loader) (string, error) {
	direct, file := l.string("database-url"), l.string("database-url-file")
	switch {
	case direct != "" && file != "":
		return "", errors.New("database-url and database-url-file are both set; give one")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("database-url-file: %s cannot be read: %s", file, describeFileError(err))
		}
		dsn := strings.TrimSpace(string(b))
		if dsn == "" {
			return "", fmt.Errorf("database-url-file: %s is empty", file)
		}
		return dsn, nil
	case direct != "":
		return direct, nil
	case os.Getenv("DATABASE_URL") != "":
		return strings.TrimSpace(os.Getenv("DATABASE_URL")), nil
	}
	return "", errors.New("database-url: not set (use --database-url, SCHEMAGATE_DATABASE_URL, --database-url-file or DATABASE_URL)")
}

var keywordPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// secretsOf finds the password in a database URL, however it is written, so that output can be
// scrubbed of it.
func secretsOf(dsn string) []string {
	var out []string
	if cfg, err := pgx.ParseConfig(dsn); err == nil && cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for _, m := range keywordPassword.FindAllStringSubmatch(dsn, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	// A URL that does not parse may still carry user:password@.
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				out = append(out, rest[colon+1:at])
			}
		}
	}
	return out
}

// secretName matches the names of variables whose values are secrets: WEBUI_SECRET_KEY,
// PGPASSWORD, API_TOKEN, AWS_SECRET_ACCESS_KEY, DATABASE_PASS.
var secretName = regexp.MustCompile(`(?i)(secret|passw|pass$|_pass_|token|credential|private|(^|_)key$|api_?key|auth)`)

// secretValues finds, among KEY=VALUE entries (--migrate-env, --env), the values to hide: the
// whole value of a secret-looking name, and the password of any URL or connection string.
func secretValues(kvs []string) []string {
	var out []string
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		if secretName.MatchString(k) {
			out = append(out, v)
		}
		out = append(out, secretsOf(v)...)
	}
	return out
}

// secretFrom reads a secret from --KEY or the file --KEY-file names (trimmed), never both.
func secretFrom(l *loader, key string) (string, error) {
	direct, file := l.string(key), l.string(key+"-file")
	switch {
	case direct != "" && file != "":
		return "", fmt.Errorf("%s and %s-file are both set; give one", key, key)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s-file: %s cannot be read: %s", key, file, describeFileError(err))
		}
		return strings.TrimSpace(string(b)), nil
	}
	return direct, nil
}
