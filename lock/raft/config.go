package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Peer is one member of the cluster: its Raft id and the address the others reach it on.
type Peer struct {
	ID      string `json:"id"`
	Address string `json:"address"`
}

// Config configures a Raft node.
type Config struct {
	// Replica is this replica's id.
	Replica string
	// Listen is the address the node accepts Raft connections on (":9091").
	Listen string
	// Advertise is the address the other nodes reach this one on (host:port). Outgoing
	// connections leave from its IP too.
	Advertise string
	// Peers is a static member list. Each node must be given the identical list, itself
	// included.
	Peers []Peer
	// Discover is a DNS name whose A/AAAA records are the members (a Kubernetes headless Service
	// with publishNotReadyAddresses, a Swarm tasks.<service> name), used when Peers is empty.
	Discover string
	// Voters is how many members vote: the first Voters of the member set, sorted by id. The
	// others follow the cluster's state through hellos, so that a rollout of a hundred replicas
	// does not hold a hundred-member election.
	Voters int
	// Expect is how many members form the cluster. A node bootstraps only when it sees exactly
	// this many, itself among them, and every one of them sees the same set.
	Expect int
	// Secret authenticates the transport; every member must have the same. Validate refuses
	// one that is short or plainly not random (checkSecret).
	Secret []byte
	// Cluster names what the members agree on (lock namespace and migration set): nodes with
	// another cluster name cannot connect, even with the right secret.
	Cluster string

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// Resolve looks up a DNS name's addresses; nil uses the system resolver.
	Resolve func(ctx context.Context, host string) ([]string, error)
	// ReleaseIdle, when set, closes the database connections idle in this process: a
	// waiting member calls it as it starts waiting, so that it holds none while it waits.
	ReleaseIdle func()
}

// DefaultConfig returns timers tuned for a LAN or one Kubernetes cluster: a leader that stops
// answering is replaced in about a second.
func DefaultConfig() Config {
	return Config{
		Listen:             ":9091",
		Voters:             5,
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		CommitTimeout:      25 * time.Millisecond,
	}
}

// Validate reports the first setting that cannot work; cross-field rules carry both values.
func (c Config) Validate() error {
	if len(c.Secret) == 0 {
		return errors.New("raft-secret: not set (use --raft-secret-file or SCHEMAGATE_RAFT_SECRET; every replica needs the same)")
	}
	if err := checkSecret(c.Secret); err != nil {
		return err
	}
	switch {
	case len(c.Peers) == 0 && c.Discover == "":
		return errors.New("raft-peers: set --raft-peers id=host:port,… or --raft-discover dns:NAME")
	case len(c.Peers) > 0 && c.Discover != "":
		return errors.New("raft-peers and raft-discover are both set; give one")
	case c.Discover != "" && c.Expect < 1:
		return fmt.Errorf("raft-expect: %d must be at least 1 with --raft-discover", c.Expect)
	case c.Voters < 1:
		return fmt.Errorf("raft-voters: %d must be at least 1", c.Voters)
	case len(c.Peers) > 0 && c.Expect != 0 && c.Expect != len(c.Peers):
		return fmt.Errorf("raft-expect (%d) must match the number of --raft-peers (%d)", c.Expect, len(c.Peers))
	}
	if err := c.validateTimers(); err != nil {
		return err
	}
	if len(c.Peers) > 0 {
		if _, err := c.self(); err != nil {
			return err
		}
	} else if c.Advertise == "" {
		return errors.New("raft-advertise: set the address other replicas reach this one on (in Kubernetes, $(POD_IP):9091)")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("raft-listen: %q is not host:port", c.Listen)
	}
	return nil
}

func (c Config) validateTimers() error {
	for _, t := range []struct {
		key string
		d   time.Duration
	}{
		{"raft-heartbeat-timeout", c.HeartbeatTimeout},
		{"raft-election-timeout", c.ElectionTimeout},
		{"raft-lease-timeout", c.LeaderLeaseTimeout},
		{"raft-commit-timeout", c.CommitTimeout},
	} {
		if t.d < 5*time.Millisecond {
			return fmt.Errorf("%s: %q must be at least 5ms", t.key, t.d)
		}
	}
	switch {
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("raft lease timeout (%s) must not exceed the heartbeat timeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return fmt.Errorf("raft election timeout (%s) must be at least the heartbeat timeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.CommitTimeout > c.HeartbeatTimeout:
		return fmt.Errorf("raft commit timeout (%s) must not exceed the heartbeat timeout (%s)", c.CommitTimeout, c.HeartbeatTimeout)
	}
	return nil
}

// self is this node in a static peer list: the entry named like the replica, or the one at the
// advertise address.
func (c Config) self() (Peer, error) {
	for _, p := range c.Peers {
		if p.ID == c.Replica || (c.Advertise != "" && p.Address == c.Advertise) {
			return p, nil
		}
	}
	return Peer{}, fmt.Errorf("raft-peers: this replica (%q) is not in the list; name it id=host:port with its replica id", c.Replica)
}

// ParsePeers reads "id=host:port,id=host:port"; an entry without "id=" is named by its address.
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		id, addr, ok := strings.Cut(entry, "=")
		if !ok {
			id, addr = entry, entry
		}
		if _, _, err := net.SplitHostPort(addr); err != nil || id == "" {
			return nil, fmt.Errorf("raft-peers: %q is not id=host:port", entry)
		}
		if slices.ContainsFunc(peers, func(p Peer) bool { return p.ID == id || p.Address == addr }) {
			return nil, fmt.Errorf("raft-peers: %q is listed twice", entry)
		}
		peers = append(peers, Peer{ID: id, Address: addr})
	}
	if len(peers) == 0 {
		return nil, errors.New("raft-peers: empty")
	}
	return peers, nil
}
