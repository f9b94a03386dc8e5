package goose

import (
	"bufio"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pressly/goose/v3"
)

// Finding is a problem with a migration set, found without a database: where it is, what is
// wrong, and what to do about it.
type Finding struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// String is the finding on one line: "00003_x.sql:12: problem; fix".
func (f Finding) String() string {
	where := f.File
	if f.Line > 0 {
		where = fmt.Sprintf("%s:%d", f.File, f.Line)
	}
	return fmt.Sprintf("%s: %s; %s", where, f.Problem, f.Fix)
}

// Lint reads the migration files at the root of fsys, without a database, and returns what
// would make goose skip a file, refuse the set, or fail a migration halfway: names goose does
// not read, a golang-migrate layout, duplicate versions, a file without -- +goose Up, a $$ body
// that goose would split at its semicolons, and statements that cannot run in a transaction in
// a migration that runs in one.
func Lint(fsys fs.FS) []Finding {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return []Finding{{File: ".", Problem: "the directory cannot be read: " + err.Error(), Fix: "check --dir"}}
	}
	var out []Finding
	versions := map[int64][]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") {
			continue
		}
		if f, ok := lintName(name); ok {
			out = append(out, f)
			continue
		}
		if !strings.HasSuffix(name, ".sql") || strings.HasSuffix(name, ".up.sql") || strings.HasSuffix(name, ".down.sql") {
			continue // a golang-migrate layout is reported once, below
		}
		v, err := goose.NumericComponent(name)
		if err != nil || v <= 0 {
			out = append(out, Finding{File: name, Problem: "goose reads only files named VERSION_description.sql, " +
				"VERSION a number above 0, and would skip this one", Fix: "rename it, for example 00042_" + strings.TrimPrefix(name, "_")})
			continue
		}
		versions[v] = append(versions[v], name)
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			out = append(out, Finding{File: name, Problem: "cannot be read: " + err.Error(), Fix: "check its permissions"})
			continue
		}
		out = append(out, lintFile(name, string(body))...)
	}
	out = append(out, duplicates(versions)...)
	if layout := golangMigrateLayout(entries); layout != nil {
		out = append([]Finding{*layout}, out...)
	}
	return out
}

// nearMiss matches file names that look like migrations goose will not read.
var nearMiss = regexp.MustCompile(`(?i)^\d+[_-].*\.(sql\.\w+|sql~|psql|pgsql|sql)$`)

// lintName reports a file name that looks like a migration goose would not read.
func lintName(name string) (Finding, bool) {
	switch {
	case strings.HasSuffix(name, ".up.sql") || strings.HasSuffix(name, ".down.sql"):
		return Finding{}, false // reported once, for the whole layout
	case strings.HasSuffix(name, ".sql"):
		return Finding{}, false
	case nearMiss.MatchString(name):
		return Finding{File: name, Problem: "looks like a migration, but goose reads only names ending in .sql (lower case) " +
			"and would skip it", Fix: "rename it to " + strings.TrimSuffix(name, path.Ext(name)) + ".sql, or move it out of --dir"}, true
	}
	return Finding{}, false
}

// golangMigrateLayout reports a golang-migrate layout: VERSION_name.up.sql and .down.sql.
func golangMigrateLayout(entries []fs.DirEntry) *Finding {
	var first string
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".up.sql") || strings.HasSuffix(n, ".down.sql") {
			first = n
			break
		}
	}
	if first == "" {
		return nil
	}
	return &Finding{File: first, Problem: "a golang-migrate layout (VERSION_name.up.sql and .down.sql): goose takes both " +
		"files of a version as two migrations of one version",
		Fix: "keep golang-migrate and let schemagate run it: --engine command --version-source sql " +
			"(docs/command-engine.md), or merge each pair into one goose file with -- +goose Up and -- +goose Down"}
}

// duplicates reports versions that more than one file claims.
func duplicates(versions map[int64][]string) []Finding {
	var out []Finding
	for v, files := range versions {
		if len(files) > 1 {
			slices.Sort(files)
			out = append(out, Finding{File: files[1], Problem: fmt.Sprintf("version %d is also %s", v, strings.Join(files[:1], ", ")),
				Fix: "give one of them the next free version"})
		}
	}
	slices.SortFunc(out, func(a, b Finding) int { return strings.Compare(a.File, b.File) })
	return out
}

// outsideTransaction matches statements PostgreSQL refuses to run inside a transaction block.
var outsideTransaction = regexp.MustCompile(`(?i)\b(create\s+(unique\s+)?index\s+concurrently|drop\s+index\s+concurrently|` +
	`reindex\s+(\(.*\)\s*)?(index|table|schema|database|system)\s+concurrently|vacuum|create\s+database|drop\s+database|` +
	`alter\s+system)\b`)

// dollarQuote matches the opening tag of a dollar-quoted string: $$ or $tag$.
var dollarQuote = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)?\$`)

// lintFile checks one goose SQL file.
func lintFile(name, body string) []Finding {
	var out []Finding
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	var (
		line                 int
		up, inStatement      bool
		noTransaction, sawUp bool
		openTag              string // the dollar-quote tag open across lines, if any
		openLine             int
		openHasSemicolon     bool
		inTxLines            []int
		inTxStatements       []string
	)
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		if ann, ok := annotation(trimmed); ok {
			switch ann {
			case "up":
				up, sawUp = true, true
			case "down":
				up = false
			case "statementbegin":
				inStatement = true
			case "statementend":
				inStatement = false
			case "no transaction":
				noTransaction = true
			}
			continue
		}
		if !up {
			continue // the Down section, or before any annotation
		}
		code := stripComment(text)
		// goose ends a statement at a line that ends in a semicolon, outside
		// StatementBegin/End: a $$ body spanning lines must not have one.
		endsStatement := strings.HasSuffix(strings.TrimSpace(code), ";")
		if openTag != "" {
			i := strings.Index(code, openTag)
			if i < 0 {
				openHasSemicolon = openHasSemicolon || endsStatement
				continue
			}
			if openHasSemicolon {
				out = append(out, dollarFinding(name, openLine))
			}
			openTag, code = "", code[i+len(openTag):]
		}
		if !inStatement {
			for {
				loc := dollarQuote.FindStringIndex(code)
				if loc == nil {
					break
				}
				tag := code[loc[0]:loc[1]]
				rest := code[loc[1]:]
				if i := strings.Index(rest, tag); i >= 0 {
					code = rest[i+len(tag):] // a body on one line: goose does not split it
					continue
				}
				openTag, openLine, openHasSemicolon = tag, line, strings.HasSuffix(strings.TrimSpace(rest), ";")
				break
			}
		}
		if m := outsideTransaction.FindString(code); m != "" {
			inTxLines = append(inTxLines, line)
			inTxStatements = append(inTxStatements, strings.ToUpper(strings.Join(strings.Fields(m), " ")))
		}
	}
	if !sawUp {
		out = append(out, Finding{File: name, Line: 1, Problem: "it has no -- +goose Up annotation, so goose finds no statement " +
			"to apply", Fix: "add a line -- +goose Up above the first statement (and -- +goose Down above the rollback, if any)"})
	}
	if !noTransaction {
		for i, l := range inTxLines {
			out = append(out, Finding{File: name, Line: l, Problem: inTxStatements[i] + " cannot run inside a transaction, " +
				"and this migration runs in one", Fix: "add -- +goose NO TRANSACTION at the top of the file (its statements " +
				"then apply one by one; keep the migration to this one statement)"})
		}
	}
	if openTag != "" && !inStatement && openHasSemicolon {
		out = append(out, dollarFinding(name, openLine))
	}
	return out
}

func dollarFinding(name string, line int) Finding {
	return Finding{File: name, Line: line, Problem: "a $$-quoted body holds semicolons, and goose splits statements at " +
		"every semicolon outside -- +goose StatementBegin/End", Fix: "put -- +goose StatementBegin on the line before the " +
		"statement and -- +goose StatementEnd after its closing semicolon"}
}

// annotation returns the goose annotation of a line, lower case ("up", "down",
// "statementbegin", "statementend", "no transaction"), if it is one.
func annotation(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "--")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	rest, ok = strings.CutPrefix(rest, "+goose")
	if !ok {
		return "", false
	}
	return strings.ToLower(strings.Join(strings.Fields(rest), " ")), true
}

// stripComment removes a -- comment from a line of SQL, leaving those inside quotes.
func stripComment(line string) string {
	inQuote := false
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\'':
			inQuote = !inQuote
		case !inQuote && strings.HasPrefix(line[i:], "--"):
			return line[:i]
		}
	}
	return line
}
