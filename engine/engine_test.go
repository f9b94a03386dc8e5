package engine_test

import (
	"slices"
	"testing"

	"github.com/schemagate/schemagate/engine"
)

func plan(target int64, versions ...int64) engine.Plan {
	var p engine.Plan
	for _, v := range versions {
		m := engine.Migration{Version: v, Transactional: true}
		p.All = append(p.All, m)
		if v <= target {
			p.Migrations = append(p.Migrations, m)
		}
	}
	p.Target = target
	return p
}

func TestAssess(t *testing.T) {
	cases := []struct {
		name       string
		plan       engine.Plan
		exists     bool
		applied    []int64
		ready      bool
		pending    []int64
		unknown    []int64
		outOfOrder []int64
		current    int64
	}{
		{"fresh database", plan(3, 1, 2, 3), false, nil, false, []int64{1, 2, 3}, nil, nil, 0},
		{"behind", plan(3, 1, 2, 3), true, []int64{1}, false, []int64{2, 3}, nil, nil, 1},
		{"ready", plan(3, 1, 2, 3), true, []int64{1, 2, 3}, true, nil, nil, nil, 3},
		{"max reached, one missing", plan(3, 1, 2, 3), true, []int64{1, 3}, false, []int64{2}, nil, []int64{2}, 3},
		{"ahead", plan(2, 1, 2), true, []int64{1, 2, 3, 4}, true, nil, []int64{3, 4}, nil, 4},
		{"applied above a pinned target", plan(2, 1, 2, 3), true, []int64{1, 2, 3}, true, nil, []int64{3}, nil, 3},
		{"pinned target reached", plan(2, 1, 2, 3), true, []int64{1, 2}, true, nil, nil, nil, 2},
		{"diverged", plan(3, 1, 2, 3), true, []int64{1, 7}, false, []int64{2, 3}, []int64{7}, []int64{2, 3}, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := engine.Assess(c.plan, c.exists, c.applied)
			versions := func(ms []engine.Migration) []int64 {
				var out []int64
				for _, m := range ms {
					out = append(out, m.Version)
				}
				return out
			}
			if st.Ready() != c.ready || st.Current != c.current || !slices.Equal(versions(st.Pending), c.pending) ||
				!slices.Equal(st.Unknown, c.unknown) || !slices.Equal(versions(st.OutOfOrder), c.outOfOrder) {
				t.Fatalf("got ready=%v current=%d pending=%v unknown=%v out-of-order=%v",
					st.Ready(), st.Current, versions(st.Pending), st.Unknown, versions(st.OutOfOrder))
			}
			if st.Describe() == "" {
				t.Fatal("empty description")
			}
		})
	}
}
