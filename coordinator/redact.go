package coordinator

import (
	"context"
	"time"

	"github.com/schemagate/schemagate/journal"
	"github.com/schemagate/schemagate/lock"
)

// The coordinator's reads of text that others wrote (the holder's statement, journal errors,
// a replicated failure) pass through Deps.Redact before anything is logged, published or
// returned, and so does every error text it writes: the journal, the announcements and the
// probes never carry a secret, whatever a migration or a migrate command printed.

// redact hides secrets in s.
func (c *Coordinator) redact(s string) string {
	if c.deps.Redact == nil {
		return s
	}
	return c.deps.Redact(s)
}

// holder is Locker.Holder, redacted.
func (c *Coordinator) holder(ctx context.Context) (*lock.Holder, error) {
	h, err := c.deps.Locker.Holder(ctx)
	if h != nil {
		h.Name, h.Query = c.redact(h.Name), c.redact(h.Query)
		if lock.IsInternal(h.Query) {
			// schemagate's own bookkeeping (a lock check, a journal row): not what the
			// migrator is applying, and nothing a person needs to read.
			h.Query, h.QueryStart = "", time.Time{}
		}
	}
	return h, err
}

// lastRun is Journal.LastRun, redacted.
func (c *Coordinator) lastRun(ctx context.Context) (*journal.Entry, error) {
	e, err := c.deps.Journal.LastRun(ctx)
	if e != nil {
		c.redactEntry(e)
	}
	return e, err
}

// tail is Journal.Tail, redacted.
func (c *Coordinator) tail(ctx context.Context, n int) ([]journal.Entry, error) {
	es, err := c.deps.Journal.Tail(ctx, n)
	for i := range es {
		c.redactEntry(&es[i])
	}
	return es, err
}

func (c *Coordinator) redactEntry(e *journal.Entry) {
	e.Error, e.Name = c.redact(e.Error), c.redact(e.Name)
}
