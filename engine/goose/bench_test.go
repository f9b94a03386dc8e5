package goose_test

import (
	"database/sql"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/schemagate/schemagate/engine/goose"
)

// BenchmarkNew measures reading and planning a set of 20 migrations, which every replica does at
// start-up.
func BenchmarkNew(b *testing.B) {
	fs := fstest.MapFS{}
	for v := 1; v <= 20; v++ {
		fs[fmt.Sprintf("%05d_m.sql", v)] = file(fmt.Sprintf("-- +goose Up\nCREATE TABLE t_%d (id int);\nINSERT INTO t_%d VALUES (1);\n-- +goose Down\nDROP TABLE t_%d;\n", v, v, v))
	}
	for b.Loop() {
		if _, err := goose.New(&sql.DB{}, goose.Options{FS: fs}); err != nil {
			b.Fatal(err)
		}
	}
}
