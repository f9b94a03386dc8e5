package alembic

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/schemagate/schemagate/engine"
	"github.com/schemagate/schemagate/lock"
	"github.com/schemagate/schemagate/tablename"
)

// DefaultTable is Alembic's version table.
const DefaultTable = "alembic_version"

// Source is an Alembic revision directory and the version table of a database: what the
// replica carries and what the database has applied, for the command engine.
//
// Versions are positions: the revisions in an order Alembic could apply them are numbered 1 to
// N, so the replica's target is N, and a database's version is the highest position it has
// applied (with branches, positions applied need not be contiguous; the revisions and heads
// are reported by id too).
type Source struct {
	graph *Graph
	db    *sql.DB
	table string
	plan  engine.Plan
	pos   map[string]int64 // revision id → position
	heads []string
}

// NewSource plans the graph's revisions against table (default alembic_version, optionally
// schema-qualified) of db. It does no I/O.
func NewSource(g *Graph, db *sql.DB, table string) (*Source, error) {
	if table == "" {
		table = DefaultTable
	}
	if err := tablename.Check(table); err != nil {
		return nil, fmt.Errorf("table: %w", err)
	}
	order, err := g.Pending(nil)
	if err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return nil, errors.New("the alembic directory holds no revision files")
	}
	s := &Source{graph: g, db: db, table: table, pos: make(map[string]int64, len(order)), heads: g.Heads()}
	h := sha256.New()
	for i, r := range order {
		s.pos[r.ID] = int64(i + 1)
		m := engine.Migration{Version: int64(i + 1), Name: r.File, Transactional: true}
		s.plan.Migrations = append(s.plan.Migrations, m)
		fmt.Fprintf(h, "%s<%s<%s\n", r.ID, strings.Join(r.DownRevisions, ","), strings.Join(r.DependsOn, ","))
	}
	s.plan.All = s.plan.Migrations
	s.plan.Target = int64(len(order))
	s.plan.Fingerprint = "alembic-" + hex.EncodeToString(h.Sum(nil)[:6])
	return s, nil
}

// Plan is every revision, in an order Alembic could apply them.
func (s *Source) Plan() engine.Plan { return s.plan }

// Heads are the revisions `alembic upgrade heads` leaves a database at.
func (s *Source) Heads() []string { return slices.Clone(s.heads) }

// Status reads the database's heads from the version table. Ready means they are this
// directory's heads (or their descendants are not known here: see Unknown). A revision the
// directory does not have means the database is ahead of this replica or diverged from it.
func (s *Source) Status(ctx context.Context) (engine.Status, error) {
	dbHeads, err := s.read(ctx)
	if tablename.Missing(err) {
		return s.statusOf(nil, true)
	}
	if err != nil {
		return engine.Status{TableExists: true, Target: s.plan.Target, TargetLabel: strings.Join(s.heads, ", ")},
			fmt.Errorf("read %s: %w", s.table, err)
	}
	return s.statusOf(dbHeads, false)
}

// StatusQuery reads the database's heads in one value, a JSON array, for a wait that reads it
// on the source's behalf (engine.StatusQuerier). It is PostgreSQL's SQL: the wait that runs it
// is the PostgreSQL lock's.
func (s *Source) StatusQuery() string {
	return "SELECT coalesce(json_agg(version_num)::text, '[]') FROM " + s.table
}

// StatusFrom reads the answer to StatusQuery; missing says the version table does not exist.
func (s *Source) StatusFrom(answer string, missing bool) (engine.Status, error) {
	if missing {
		return s.statusOf(nil, true)
	}
	var heads []string
	if err := json.Unmarshal([]byte(answer), &heads); err != nil {
		return engine.Status{}, fmt.Errorf("read %s: %w", s.table, err)
	}
	return s.statusOf(sortedHeads(heads), false)
}

// statusOf judges the database's heads (sorted), or a missing version table.
func (s *Source) statusOf(dbHeads []string, missing bool) (engine.Status, error) {
	st := engine.Status{TableExists: true, Target: s.plan.Target, TargetLabel: strings.Join(s.heads, ", ")}
	if missing {
		st.TableExists = false
		st.Pending = s.plan.Migrations
		return st, nil
	}
	st.CurrentLabel = strings.Join(dbHeads, ", ")
	if len(dbHeads) == 0 {
		st.CurrentLabel = "none"
	}
	applied, err := s.graph.Applied(dbHeads)
	var unknown *UnknownRevisionError
	if errors.As(err, &unknown) {
		// The database is past what this replica knows: every known revision below the
		// unknown heads cannot be told apart, so nothing is reported pending.
		for i := range unknown.IDs {
			st.Unknown = append(st.Unknown, s.plan.Target+int64(i)+1)
		}
		st.Current = s.plan.Target + int64(len(unknown.IDs))
		st.CurrentLabel += " (unknown to this replica: " + strings.Join(unknown.IDs, ", ") + ")"
		return st, nil
	}
	if err != nil {
		return st, err
	}
	for _, m := range s.plan.Migrations {
		if id := s.idAt(m.Version); applied[id] {
			st.Current = max(st.Current, m.Version)
		} else {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

func (s *Source) idAt(pos int64) string {
	for id, p := range s.pos {
		if p == pos {
			return id
		}
	}
	return ""
}

func (s *Source) read(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, lock.Internal("SELECT version_num FROM "+s.table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var heads []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		heads = append(heads, v)
	}
	return sortedHeads(heads), rows.Err()
}

// sortedHeads is the version table's heads as the status judges them: trimmed (version_num
// may be padded) and sorted. It changes heads in place.
func sortedHeads(heads []string) []string {
	for i := range heads {
		heads[i] = strings.TrimSpace(heads[i])
	}
	slices.Sort(heads)
	return heads
}

// Open reads the revision files of dir: an Alembic script directory (with env.py and a
// versions directory, as `alembic init` makes it and Open WebUI ships it), or the versions
// directory itself.
func Open(dir string) (*Graph, error) {
	versions := dir
	if isDir(filepath.Join(dir, "versions")) && isFile(filepath.Join(dir, "env.py")) {
		versions = filepath.Join(dir, "versions")
	}
	if !isDir(versions) {
		return nil, fmt.Errorf("alembic directory %s: not a directory", dir)
	}
	return ParseDir(os.DirFS(versions), ".")
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}
