package fleet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrNoBlackhole says this machine cannot drop packets: iptables needs root, and must be
// installed.
var ErrNoBlackhole = errors.New("dropping packets needs root and iptables")

// Blackhole drops every packet of one loopback TCP connection, both ways, at the network layer,
// identified by its client port: the kernels on both ends stop hearing from each other, as when
// a node vanishes. (A user-space proxy that stops forwarding would not do: its kernel keeps
// acknowledging.) heal removes the rules; call it exactly once.
func Blackhole(clientPort int) (heal func() error, err error) {
	return BlackholeOneWay(clientPort, BothWays)
}

// Direction says which packets of a connection BlackholeOneWay drops.
type Direction int

const (
	BothWays Direction = iota
	ToServer           // the client's packets: the server stops hearing from the client
	ToClient           // the server's packets: the client stops hearing from the server
)

// BlackholeOneWay is Blackhole for one direction of the connection (or both).
func BlackholeOneWay(clientPort int, dir Direction) (heal func() error, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNoBlackhole
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, ErrNoBlackhole
	}
	toServer := []string{"INPUT", "-i", "lo", "-p", "tcp", "--sport", fmt.Sprint(clientPort), "-j", "DROP"}
	toClient := []string{"INPUT", "-i", "lo", "-p", "tcp", "--dport", fmt.Sprint(clientPort), "-j", "DROP"}
	rules := [][]string{toServer, toClient}
	switch dir {
	case ToServer:
		rules = rules[:1]
	case ToClient:
		rules = rules[1:]
	}
	iptables := func(op string, rule []string) error {
		if out, err := exec.Command("iptables", append([]string{op}, rule...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables %s %s: %w: %s", op, strings.Join(rule, " "), err, out)
		}
		return nil
	}
	heal = func() error {
		var errs []error
		for _, r := range rules {
			errs = append(errs, iptables("-D", r))
		}
		return errors.Join(errs...)
	}
	for i, r := range rules {
		if err := iptables("-I", r); err != nil {
			for _, added := range rules[:i] {
				iptables("-D", added)
			}
			return nil, err
		}
	}
	return heal, nil
}
