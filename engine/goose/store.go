package goose

import (
	"context"
	"errors"

	"github.com/pressly/goose/v3/database"

	"github.com/schemagate/schemagate/lock"
)

// hookStore is goose's own version store with one addition: before a version row is inserted,
// inTx runs on the same transaction (or, for a migration without one, the same session). That
// is where the coordinator fences the lock and announces progress, so that a migration commits
// only together with proof that its session still holds the lock.
type hookStore struct {
	database.Store
	inTx func(ctx context.Context, tx lock.Execer) error
}

var _ database.StoreExtender = (*hookStore)(nil)

func (s *hookStore) Insert(ctx context.Context, db database.DBTxConn, req database.InsertRequest) error {
	if s.inTx != nil && req.Version > 0 {
		if err := s.inTx(ctx, db); err != nil {
			return err
		}
	}
	return s.Store.Insert(ctx, db, req)
}

// TableExists delegates to goose's dialect store, which knows its catalog.
func (s *hookStore) TableExists(ctx context.Context, db database.DBTxConn) (bool, error) {
	if t, ok := s.Store.(interface {
		TableExists(context.Context, database.DBTxConn) (bool, error)
	}); ok {
		return t.TableExists(ctx, db)
	}
	return false, errors.ErrUnsupported
}
