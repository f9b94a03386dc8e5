// Package tablename checks the table names schemagate puts into SQL (version tables, the
// journal, the fence), and recognises the error a database gives for a table that does not
// exist yet. It knows nothing of migrations or locks, so that every package that names a table
// can use it.
package tablename

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Missing reports whether err says a table does not exist yet: PostgreSQL's undefined_table
// (42P01), or SQLite's "no such table". A version or journal table is missing until the first
// migrator creates it.
func Missing(err error) bool {
	if err == nil {
		return false
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		return coded.SQLState() == "42P01"
	}
	return strings.Contains(err.Error(), "no such table")
}

// CreateRace reports whether err is what a CREATE TABLE IF NOT EXISTS that raced another one
// gets on PostgreSQL: a unique_violation on the catalog (23505), duplicate_table (42P07), or
// duplicate_object (42710: the other created the table's row type first). The table exists
// then, which is all the loser wanted. The driver's error is matched by its SQLState method.
func CreateRace(err error) bool {
	var coded interface{ SQLState() string }
	if !errors.As(err, &coded) {
		return false
	}
	switch coded.SQLState() {
	case "23505", "42P07", "42710":
		return true
	}
	return false
}

var pattern = regexp.MustCompile(`^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$`)

// reservedWords cannot name a table unquoted: PostgreSQL's reserved keywords (also those that
// may name a function or type) and the keywords SQLite does not take as names.
var reservedWords = strings.Fields(`add all alter analyse analyze and any array as asc asymmetric
	authorization autoincrement between binary both case cast check collate collation column commit
	concurrently constraint create cross current_catalog current_date current_role current_schema
	current_time current_timestamp current_user default deferrable delete desc distinct do drop else
	end escape except exists false fetch for foreign freeze from full grant group having if ilike in
	index initially inner insert intersect into is isnull join lateral leading left like limit
	localtime localtimestamp natural not nothing notnull null offset on only or order outer overlaps
	placing primary references returning right select session_user set similar some symmetric table
	tablesample then to trailing transaction true union unique update user using values variadic
	verbose when where window with`)

// maxNameBytes is the longest name PostgreSQL keeps; it cuts longer ones.
const maxNameBytes = 63

// Check says why name cannot be a table name schemagate puts into SQL, or returns nil.
// A table name is lower-case letters, digits, _ and $, optionally schema-qualified, and no
// reserved word. Names are not quoted, so PostgreSQL folds them to lower case: MyVersions would
// create myversions, and a later release would look for MyVersions in vain.
func Check(name string) error {
	lower := strings.ToLower(name)
	if !pattern.MatchString(lower) {
		return fmt.Errorf("%q is not a table name (lower-case letters, digits, _ and $; optionally schema.table)", name)
	}
	for _, part := range strings.Split(lower, ".") {
		if slices.Contains(reservedWords, part) {
			return fmt.Errorf("%q is not a table name: %s is an SQL reserved word; choose another name", name, part)
		}
		if len(part) > maxNameBytes {
			return fmt.Errorf("%q is not a table name: longer than the %d bytes PostgreSQL keeps of a name", name, maxNameBytes)
		}
	}
	if lower != name {
		return fmt.Errorf("%q is not a table name: PostgreSQL folds unquoted names to lower case; write %q", name, lower)
	}
	return nil
}
