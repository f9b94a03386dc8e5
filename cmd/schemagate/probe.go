package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/schemagate/schemagate"
)

// probeError ends `schemagate probe` with exit code 1: Docker's HEALTHCHECK knows only 0
// (healthy) and 1 (unhealthy), and reserves 2, so probe never exits with anything else.
type probeError struct{ err error }

func (e *probeError) Error() string                 { return e.err.Error() }
func (e *probeError) Unwrap() error                 { return e.err }
func (e *probeError) ExitCode() schemagate.ExitCode { return schemagate.ExitNotReady }

func (a *app) probeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "GET a serve endpoint: exit 0 on a 2xx answer, 1 on anything else (for HEALTHCHECK in images without curl)",
		Long: `probe is an HTTP client for Docker and Swarm HEALTHCHECK in images without curl:

  HEALTHCHECK --interval=5s --start-period=10m CMD ["schemagate", "probe"]

It GETs a URL of serve (by default /readyz on serve's default port) and prints the status and
the first line of the answer. Its settings are SCHEMAGATE_PROBE_URL and
SCHEMAGATE_PROBE_TIMEOUT: the gate's variables in the same container do not reach it, and it
reads no config file.`,
		Example: examples(
			"schemagate probe",
			"# Liveness only: the process runs, whatever the schema",
			"schemagate probe --url http://127.0.0.1:9090/livez --timeout 1s"),
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &probeError{fmt.Errorf("unexpected argument %q", args[0])}
			}
			return nil
		},
		RunE: a.probe,
	}
	setExitCodes(cmd, "",
		exit{schemagate.ExitReady, "the URL answered 2xx"},
		exit{schemagate.ExitNotReady, "anything else: another status, no answer, or a bad flag (Docker reserves exit code 2)"})
	cmd.Flags().String("url", "http://127.0.0.1:9090/readyz", "endpoint to GET")
	cmd.Flags().Duration("timeout", 2*time.Second, "bound on the request")
	// Its own variables: SCHEMAGATE_TIMEOUT in the same container is the gate's deadline.
	cmd.Flags().SetAnnotation("url", envAnnotation, []string{"SCHEMAGATE_PROBE_URL"})
	cmd.Flags().SetAnnotation("timeout", envAnnotation, []string{"SCHEMAGATE_PROBE_TIMEOUT"})
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &probeError{err} })
	return cmd
}

func (a *app) probe(cmd *cobra.Command, _ []string) error {
	timeout, _ := cmd.Flags().GetDuration("timeout")
	if v := os.Getenv("SCHEMAGATE_PROBE_TIMEOUT"); v != "" && !cmd.Flags().Changed("timeout") {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return &probeError{fmt.Errorf("SCHEMAGATE_PROBE_TIMEOUT: %q is not a duration", v)}
		}
		timeout = d
	}
	if timeout <= 0 {
		return &probeError{errors.New("timeout: must be a positive duration")}
	}
	target, _ := cmd.Flags().GetString("url")
	if v := os.Getenv("SCHEMAGATE_PROBE_URL"); v != "" && !cmd.Flags().Changed("url") {
		target = strings.TrimSpace(v)
	}
	if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &probeError{fmt.Errorf("url: %q is not an http:// or https:// URL", target)}
	}
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(target)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &probeError{fmt.Errorf("GET %s: %w", target, err)}
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	line = strings.TrimSpace(line)
	if resp.StatusCode/100 != 2 {
		return &probeError{fmt.Errorf("GET %s: %s: %s", target, resp.Status, line)}
	}
	fmt.Fprintf(a.stdout, "%s: %s\n", resp.Status, line)
	return nil
}
