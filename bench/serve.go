package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schemagate/schemagate/internal/fleet"
)

// serveIdle measures a ready `schemagate serve` left alone: its resident memory, its CPU, how
// many statements it sends, and how fast /readyz answers.
func (b *bench) serveIdle(ctx context.Context) error {
	const idle = 30 * time.Second
	dir, err := b.migrationDir("serve", fleet.MigrationSet{N: 20})
	if err != nil {
		return err
	}
	d, err := newDatabase(ctx, b.opts.adminURL)
	if err != nil {
		return err
	}
	defer d.drop(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	r, err := fleet.Start(b.bin, "serve", []string{"serve", "--database-url", d.url, "--dir", dir, "--listen", addr})
	if err != nil {
		return err
	}
	defer r.Stop()
	url := "http://" + addr + "/readyz"
	if err := awaitHTTP(url, time.Minute); err != nil {
		return fmt.Errorf("%w:\n%s", err, r.Output())
	}
	// Settle before measuring the idle state: start-up garbage is collected, and PostgreSQL
	// flushes an idle backend's statistics (the statement counts below) up to 10 s late.
	time.Sleep(12 * time.Second)

	pid := r.Cmd.Process.Pid
	cpu0, err := cpuTime(pid)
	if err != nil {
		return err
	}
	xact0, err := d.int(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", d.name)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	cpu1, _ := cpuTime(pid)
	xact1, _ := d.int(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", d.name)
	rss, err := rssKiB(pid)
	if err != nil {
		return err
	}
	b.add("serve, ready and idle: resident memory (VmRSS)", fmt.Sprintf("%.1f MB", float64(rss)/1024), "≤20 MB")
	b.add(fmt.Sprintf("serve, ready and idle: CPU over %s", idle),
		fmt.Sprintf("%s (%.3f %%)", cpu1-cpu0, 100*(cpu1-cpu0).Seconds()/idle.Seconds()), "≈0")
	// The bench's own statements in between (two) are subtracted.
	b.add("serve, ready and idle: statements per minute it sends",
		fmt.Sprintf("%.0f", float64(xact1-xact0-2)*float64(time.Minute)/float64(idle)), "no busy polling")

	lat, err := probeLatency(url, 10000)
	if err != nil {
		return err
	}
	b.add("GET /readyz (10 000 sequential requests, keep-alive), p50 / p99",
		millis(percentile(lat, 50))+" / "+millis(percentile(lat, 99)), "p99 ≤1 ms")
	return nil
}

func awaitHTTP(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s never answered 200", url)
}

func probeLatency(url string, n int) ([]time.Duration, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	out := make([]time.Duration, 0, n)
	for range n {
		begin := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(begin))
	}
	return out, nil
}

// cpuTime reads a process's user + system CPU time from /proc.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which is in parentheses and may hold spaces).
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// rssKiB reads a process's resident set size from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
