package alembic

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Revision
	}{
		{
			name: "plain, double quotes",
			src:  "revision = \"1af9b942657b\"\ndown_revision = \"242a2047eae0\"\nbranch_labels = None\ndepends_on = None\n",
			want: Revision{ID: "1af9b942657b", DownRevisions: []string{"242a2047eae0"}},
		},
		{
			name: "plain, single quotes",
			src:  "revision = '57c599a3cb57'\ndown_revision = '922e7a387820'\nbranch_labels = None\ndepends_on = None\n",
			want: Revision{ID: "57c599a3cb57", DownRevisions: []string{"922e7a387820"}},
		},
		{
			name: "modern template with annotations",
			src: `"""add thing

Revision ID: c440947495f3
Revises: 81cc2ce44d79
Create Date: 2025-12-21 20:27:41.694897

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "c440947495f3"
down_revision: Union[str, None] = "81cc2ce44d79"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table("x", sa.Column("id", sa.Text()))
`,
			want: Revision{ID: "c440947495f3", DownRevisions: []string{"81cc2ce44d79"}},
		},
		{
			name: "base with None",
			src:  "revision: str = '7e5b5dc7342b'\ndown_revision: Union[str, None] = None\n",
			want: Revision{ID: "7e5b5dc7342b"},
		},
		{
			name: "merge: tuple over several lines with comments and a trailing comma",
			src: `revision: str = "m1"
down_revision: Union[str, Sequence[str], None] = (
    "a1",  # the billing branch
    # a comment line inside the tuple
    'b2',
)
branch_labels: Union[str, Sequence[str], None] = None
`,
			want: Revision{ID: "m1", DownRevisions: []string{"a1", "b2"}},
		},
		{
			name: "merge: list, bare tuple",
			src:  "revision = 'm1'\ndown_revision = ['a1', 'b2']\ndepends_on = 'x', 'y'\n",
			want: Revision{ID: "m1", DownRevisions: []string{"a1", "b2"}, DependsOn: []string{"x", "y"}},
		},
		{
			name: "branch labels and depends_on as bare strings are one element",
			src:  "revision = 'a'\ndown_revision = None\nbranch_labels = 'billing'\ndepends_on = \"55af2cb1c267\"\n",
			want: Revision{ID: "a", BranchLabels: []string{"billing"}, DependsOn: []string{"55af2cb1c267"}},
		},
		{
			name: "branch labels and depends_on as tuples",
			src:  "revision = 'a'\ndown_revision = 'b'\nbranch_labels = ('billing', 'core',)\ndepends_on = ('c', 'd')\n",
			want: Revision{ID: "a", DownRevisions: []string{"b"}, BranchLabels: []string{"billing", "core"}, DependsOn: []string{"c", "d"}},
		},
		{
			name: "one-element tuple, parenthesized string, empty tuple and list",
			src:  "revision = ('a')\ndown_revision = ('b',)\nbranch_labels = ()\ndepends_on = []\n",
			want: Revision{ID: "a", DownRevisions: []string{"b"}},
		},
		{
			name: "docstring that disagrees with the code",
			src: `"""Wrong header

Revision ID: 000000000000
Revises: ffffffffffff
"""
revision = "3ab32c4b8f59"
down_revision = "1af9b942657b"
`,
			want: Revision{ID: "3ab32c4b8f59", DownRevisions: []string{"1af9b942657b"}},
		},
		{
			name: "indented assignments, comments and strings are ignored",
			src: `revision = "real"  # revision = "comment"
# down_revision = "commented"
SQL = """
down_revision = 'in a string'
"""
down_revision = None


def upgrade():
    revision = "local"
    down_revision = "local"


class Helper:
    depends_on = ("class", "body")
`,
			want: Revision{ID: "real"},
		},
		{
			name: "raw and unicode prefixes",
			src:  "revision = r'a\\\\b'\ndown_revision = (u\"def\", R'ghi', U\"jkl\")\n",
			want: Revision{ID: `a\\b`, DownRevisions: []string{"def", "ghi", "jkl"}},
		},
		{
			name: "escapes and adjacent strings",
			src:  "revision = \"ab\" 'cd'\ndown_revision = \"e\\\"f\"\n",
			want: Revision{ID: "abcd", DownRevisions: []string{`e"f`}},
		},
		{
			name: "semicolons, backslash continuation, CRLF",
			src:  "revision = 'a'; down_revision = 'b'\r\nbranch_labels = \\\r\n    'x'\r\n",
			want: Revision{ID: "a", DownRevisions: []string{"b"}, BranchLabels: []string{"x"}},
		},
		{
			name: "annotation alone is no assignment; the last assignment counts",
			src:  "revision: str\nrevision = 'first'\nrevision = 'second'\n",
			want: Revision{ID: "second"},
		},
		{
			name: "broken code after the header does not matter",
			src:  "revision = 'a'\ndown_revision = None\n\ndef upgrade():\n    op.execute(\"unterminated\n",
			want: Revision{ID: "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFile("x.py", []byte(tt.src))
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			tt.want.File = "x.py"
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseFile =\n%#v\nwant\n%#v", *got, tt.want)
			}
		})
	}
}

func TestParseFileErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		field string // empty: the file has no revision
		want  string
	}{
		{"no revision", "down_revision = 'a'\n", "", "no module-level revision assignment"},
		{"revision only in the docstring", "\"\"\"\nRevision ID: abc\n\"\"\"\n", "", "no module-level revision"},
		{"revision only indented", "def f():\n    revision = 'abc'\n", "", "no module-level revision"},
		{"unterminated docstring", "\"\"\"doc\nrevision = 'abc'\n", "", "line 1: unterminated string"},
		{"call", "revision = compute()\n", "revision", `line 1: unexpected "compute"`},
		{"call in down_revision", "revision = 'a'\ndown_revision = get_parent()\n", "down_revision", `unexpected "get_parent"`},
		{"expression", "revision = 'a'\ndown_revision = 'b' + 'c'\n", "down_revision", `line 2: unexpected "+"`},
		{"unterminated tuple", "revision = 'a'\ndown_revision = (\n    'b',\n    'c',\n\ndef upgrade():\n    pass\n", "down_revision", `line 2: "(" is never closed`},
		{"unterminated string", "revision = 'abc\n", "revision", "line 1: unterminated string"},
		{"f-string", "revision = f\"{base}1\"\n", "revision", "line 1: f-strings are not supported"},
		{"rf-string", "revision = 'a'\ndepends_on = (rf'{x}',)\n", "depends_on", "rf-strings are not supported"},
		{"bytes", "revision = b'abc'\n", "revision", "bytes literal"},
		{"revision None", "revision = None\n", "revision", "must be a single string"},
		{"revision tuple", "revision = ('a', 'b')\n", "revision", "must be a single string"},
		{"None in tuple", "revision = 'a'\ndown_revision = ('b', None)\n", "down_revision", "may hold only strings"},
		{"nested tuple", "revision = 'a'\nbranch_labels = (('b',),)\n", "branch_labels", "may hold only strings"},
		{"missing comma", "revision = 'a'\ndown_revision = ('b' None)\n", "down_revision", `unexpected "None"`},
		{"empty string", "revision = ''\n", "revision", "empty string"},
		{"missing value", "revision =\n", "revision", "line 1: missing value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFile("1af9_x.py", []byte(tt.src))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseFile error = %v, want a *ParseError", err)
			}
			if pe.File != "1af9_x.py" || pe.Field != tt.field {
				t.Errorf("ParseError{File: %q, Field: %q}, want {1af9_x.py, %q}", pe.File, pe.Field, tt.field)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "alembic revision file 1af9_x.py: ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming 1af9_x.py and saying %q", msg, tt.want)
			}
			if got := errors.Is(err, ErrNoRevision); got != (tt.field == "") {
				t.Errorf("errors.Is(%q, ErrNoRevision) = %v", msg, got)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := ParseFile("1af9_x.py", []byte("revision = 'a'\ndown_revision = ('b',\n"))
	want := `alembic revision file 1af9_x.py: cannot read down_revision: line 2: "(" is never closed`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}
