// Package sqlite opens SQLite databases for schemagate with a pure-Go driver (modernc.org/sqlite),
// so the binary stays static.
//
// A SQLite URL names a file: sqlite:///data/app.db (absolute), sqlite:data/app.db or
// sqlite://data/app.db (relative to the working directory), sqlite3: and file: alike. Query
// parameters pass to the driver, for example ?_pragma=journal_mode(WAL).
//
// The path is percent-decoded, as in any URL: sqlite:///data/my%20app.db is the file
// "my app.db", and the lock file beside it is named after that same file. A # is refused: in a
// URL it would start a fragment, so a # in a file name is written %23.
package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var prefixes = []string{"sqlite3://", "sqlite://", "sqlite3:", "sqlite:", "file:"}

// IsURL reports whether dsn names a SQLite database.
func IsURL(dsn string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(dsn, p) {
			return true
		}
	}
	return false
}

// Parse returns the database file's path and the driver parameters of dsn.
func Parse(dsn string) (path string, params url.Values, err error) {
	rest := dsn
	for _, p := range prefixes {
		if r, ok := strings.CutPrefix(dsn, p); ok {
			rest = r
			break
		}
	}
	if strings.Contains(rest, "#") {
		return "", nil, errors.New("database URL is not valid: # would start a URL fragment; write a # in the file name as %23")
	}
	raw, query, _ := strings.Cut(rest, "?")
	if params, err = url.ParseQuery(query); err != nil {
		return "", nil, fmt.Errorf("database URL is not valid: the parameters after ? do not parse")
	}
	if path, err = url.PathUnescape(raw); err != nil {
		return "", nil, errors.New("database URL is not valid: the file name has a bad %-escape (write a % as %25)")
	}
	switch {
	case strings.ContainsRune(path, 0):
		return "", nil, errors.New("database URL is not valid: the file name holds a NUL byte (%00)")
	case path == "":
		return "", nil, errors.New("database URL is not valid: no SQLite file named (sqlite:///path/to/app.db)")
	case path == ":memory:" || params.Get("mode") == "memory":
		return "", nil, errors.New("database URL is not valid: an in-memory SQLite database is private to one process; name a file")
	}
	return path, params, nil
}

// Open opens the SQLite database dsn names. A statement that finds the database locked by
// another process waits up to 10 s (busy_timeout) before failing, unless the URL sets its own.
// Nothing is read or created until the first statement.
func Open(dsn string) (*sql.DB, string, error) {
	path, params, err := Parse(dsn)
	if err != nil {
		return nil, "", err
	}
	if !strings.Contains(strings.Join(params["_pragma"], ","), "busy_timeout") {
		params.Add("_pragma", "busy_timeout(10000)")
	}
	db, err := sql.Open("sqlite", driverURI(path)+"?"+params.Encode())
	if err != nil {
		return nil, "", fmt.Errorf("open %s: %w", path, err)
	}
	return db, path, nil
}

// driverURI is the SQLite URI of the file at path, escaped so that SQLite's URI parsing (which
// percent-decodes, and ends the path at ? or #) gives path back. An absolute path gets an empty
// authority, so that one starting with // is not read as a host.
func driverURI(path string) string {
	escaped := (&url.URL{Path: path}).EscapedPath()
	if strings.HasPrefix(path, "/") {
		return "file://" + escaped
	}
	return "file:" + escaped
}

// Retryable reports whether err is SQLite being busy or locked by another process: trying again
// later may succeed.
func Retryable(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// Refused reports whether the database cannot be opened at all: a file that is not a SQLite
// database, a directory that does not exist, no permission.
func Refused(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY:
		return true
	}
	return false
}
