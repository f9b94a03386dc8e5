// Package sqlite opens SQLite databases for schemagate with a pure-Go driver (modernc.org/sqlite),
// so the binary stays static.
//
// A SQLite URL names a file. Tools disagree on the slashes, so the URL's dialect decides:
//
//   - SQLAlchemy's URLs (sqlite+pysqlite:///, sqlite+aiosqlite:///, or any sqlite+DRIVER:) read
//     three slashes as relative and four as absolute: sqlite+pysqlite:///data/app.db is
//     data/app.db in the working directory, sqlite+pysqlite:////data/app.db is /data/app.db.
//   - sqlite:data/app.db and sqlite://data/app.db are relative everywhere; sqlite:////data/app.db
//     and file:/data/app.db (file:///data/app.db) absolute everywhere.
//   - sqlite:///data/app.db is absolute for most tools (goose, dbmate, schemagate before) and
//     relative for SQLAlchemy, which Open WebUI and most Python apps pass in DATABASE_URL. Where
//     the working directory is / the two are one file. Otherwise the reading whose file exists
//     (or, before the first run, whose directory exists) is taken, and said so; where both or
//     neither do, the URL is refused with both readings.
//
// sqlite3: works as sqlite:. Query parameters pass to the driver, for example
// ?_pragma=journal_mode(WAL).
//
// The path is percent-decoded, as in any URL: sqlite:////data/my%20app.db is the file
// "my app.db", and the lock file beside it is named after that same file. A # is refused: in a
// URL it would start a fragment, so a # in a file name is written %23.
package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// scheme matches the scheme of a SQLite URL: sqlite, sqlite3, or SQLAlchemy's sqlite+DRIVER;
// and file.
var scheme = regexp.MustCompile(`^(?:(sqlite3?)(\+[A-Za-z0-9_]+)?|file):`)

// IsURL reports whether dsn names a SQLite database.
func IsURL(dsn string) bool { return scheme.MatchString(dsn) }

// Location is the file a SQLite URL names.
type Location struct {
	// Path is the database file.
	Path string
	// Params are the driver parameters.
	Params url.Values
	// Note says how an ambiguous URL was read, when it was; empty otherwise.
	Note string
}

// Parse returns the database file and the driver parameters of dsn.
func Parse(dsn string) (Location, error) {
	m := scheme.FindStringSubmatch(dsn)
	if m == nil {
		return Location{}, errors.New("database URL is not valid: not a SQLite URL")
	}
	rest := dsn[len(m[0]):]
	if strings.Contains(rest, "#") {
		return Location{}, errors.New("database URL is not valid: # would start a URL fragment; write a # in the file name as %23")
	}
	raw, query, _ := strings.Cut(rest, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return Location{}, fmt.Errorf("database URL is not valid: the parameters after ? do not parse")
	}
	path, err := url.PathUnescape(raw)
	if err != nil {
		return Location{}, errors.New("database URL is not valid: the file name has a bad %-escape (write a % as %25)")
	}
	loc := Location{Params: params}
	switch sqlalchemy := m[2] != ""; {
	case sqlalchemy && !strings.HasPrefix(path, "///"):
		return Location{}, fmt.Errorf("database URL is not valid: %s:// must be followed by /path (relative) or //path (absolute)",
			strings.TrimSuffix(m[0], ":"))
	case sqlalchemy:
		loc.Path = path[3:] // three slashes: relative; four: absolute
	case m[1] == "" && strings.HasPrefix(path, "//"):
		loc.Path = path[2:] // file:///data/app.db: an empty authority
	case strings.HasPrefix(path, "////"):
		loc.Path = path[3:] // absolute for every tool
	case strings.HasPrefix(path, "///"):
		if loc.Path, loc.Note, err = disambiguate(dsn, path[2:]); err != nil {
			return Location{}, err
		}
	case strings.HasPrefix(path, "//"):
		loc.Path = path[2:] // sqlite://data/app.db: relative
	default:
		loc.Path = path
	}
	switch {
	case strings.ContainsRune(loc.Path, 0):
		return Location{}, errors.New("database URL is not valid: the file name holds a NUL byte (%00)")
	case loc.Path == "" || loc.Path == "/":
		return Location{}, errors.New("database URL is not valid: no SQLite file named (sqlite:////path/to/app.db)")
	case loc.Path == ":memory:" || params.Get("mode") == "memory":
		return Location{}, errors.New("database URL is not valid: an in-memory SQLite database is private to one process; name a file")
	}
	return loc, nil
}

// disambiguate reads sqlite:///FILE (abs is /FILE): absolute for most tools, relative for
// SQLAlchemy. It takes the reading whose file exists, else the one whose directory exists, and
// refuses the URL where that does not tell them apart.
func disambiguate(dsn, abs string) (path, note string, err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", "", fmt.Errorf("database URL %s: the working directory is unknown, so its reading cannot be decided: %w",
			redactedURL(dsn), err)
	}
	rel := filepath.Join(wd, abs[1:])
	if rel == abs {
		return abs, "", nil
	}
	pick := func(exists func(string) bool, what string) (string, string, bool) {
		a, r := exists(abs), exists(rel)
		switch {
		case a && !r:
			return abs, fmt.Sprintf("read %s as %s, whose %s exists (SQLAlchemy would read %s)", redactedURL(dsn), abs, what, rel), true
		case r && !a:
			return rel, fmt.Sprintf("read %s as %s, as SQLAlchemy does: its %s exists (not %s)", redactedURL(dsn), rel, what, abs), true
		}
		return "", "", false
	}
	if path, note, ok := pick(fileExists, "file"); ok {
		return path, note, nil
	}
	if path, note, ok := pick(func(p string) bool { return dirExists(filepath.Dir(p)) }, "directory"); ok {
		return path, note, nil
	}
	return "", "", fmt.Errorf("database URL is ambiguous: %s is %s for most tools and %s for SQLAlchemy (relative to %s), "+
		"and the files do not tell which is meant; write sqlite:///%s for the first or sqlite+pysqlite:///%s for the second",
		redactedURL(dsn), abs, rel, wd, "/"+abs[1:], abs[1:])
}

func fileExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir()
}

func dirExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// redactedURL is dsn without its query, which is all a message needs (SQLite URLs hold no
// password, but a query may hold anything).
func redactedURL(dsn string) string {
	u, _, _ := strings.Cut(dsn, "?")
	return u
}

// Open opens the SQLite database dsn names. A statement that finds the database locked by
// another process waits up to 10 s (busy_timeout) before failing, unless the URL sets its own.
// Nothing is read or created until the first statement.
func Open(dsn string) (*sql.DB, Location, error) {
	loc, err := Parse(dsn)
	if err != nil {
		return nil, Location{}, err
	}
	params := loc.Params
	if !strings.Contains(strings.Join(params["_pragma"], ","), "busy_timeout") {
		params.Add("_pragma", "busy_timeout(10000)")
	}
	db, err := sql.Open("sqlite", driverURI(loc.Path)+"?"+params.Encode())
	if err != nil {
		return nil, Location{}, fmt.Errorf("open %s: %w", loc.Path, err)
	}
	return db, loc, nil
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
