package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gogo/protobuf/types"
)

// benchConfig holds the flags shared by bench and bench-client.
type benchConfig struct {
	payloads    []int
	concurrency []int
	duration    time.Duration
}

func benchFlags(fs *flag.FlagSet) func() (benchConfig, error) {
	payloads := fs.String("payloads", "0,1024,65536", "comma-separated Echo payload sizes in bytes")
	conc := fs.String("concurrency", "1,16", "comma-separated numbers of concurrent callers")
	dur := fs.Duration("duration", 2*time.Second, "measured duration per row")
	return func() (benchConfig, error) {
		var cfg benchConfig
		var err error
		if cfg.payloads, err = parseInts(*payloads, 0); err != nil {
			return cfg, fmt.Errorf("-payloads: %w", err)
		}
		for _, p := range cfg.payloads {
			if echoEnvelopeSize(p) > maxFrame {
				return cfg, fmt.Errorf("-payloads: %d exceeds the max Echo payload %d", p, maxEchoPayload())
			}
		}
		if cfg.concurrency, err = parseInts(*conc, 1); err != nil {
			return cfg, fmt.Errorf("-concurrency: %w", err)
		}
		if *dur <= 0 {
			return cfg, errors.New("-duration must be positive")
		}
		cfg.duration = *dur
		return cfg, nil
	}
}

func benchClientMain(args []string) error {
	fs := flag.NewFlagSet("bench-client", flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket of the server to benchmark (required)")
	config := benchFlags(fs)
	fs.Parse(args)
	if *socket == "" {
		return errors.New("-socket is required")
	}
	cfg, err := config()
	if err != nil {
		return err
	}
	return runBench(*socket, cfg)
}

// benchMain forks "ttrpc-peer serve" as a separate server process and
// benchmarks it, so client and server do not share a Go runtime.
func benchMain(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	config := benchFlags(fs)
	fs.Parse(args)
	cfg, err := config()
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "ttrpc-peer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "echo.sock")

	stop, err := startServer(socket)
	if err != nil {
		return err
	}
	defer stop()
	return runBench(socket, cfg)
}

// startServer runs "serve" as a child process and waits for READY. The
// returned func stops it (SIGTERM, then closing its stdin).
func startServer(socket string) (func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve", "-socket", socket)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the child exits if we die and this closes
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		stdin.Close()
		cmd.Wait()
	}

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "READY" {
			err = fmt.Errorf("unexpected output %q", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Second):
		err = errors.New("timed out")
	}
	if err != nil {
		stop()
		return nil, fmt.Errorf("server child did not become ready: %w", err)
	}
	return stop, nil
}

// benchRow is one JSON output line.
type benchRow struct {
	Payload     int     `json:"payload"`
	Concurrency int     `json:"concurrency"`
	Calls       int64   `json:"calls"`
	Seconds     float64 `json:"seconds"`
	CallsPerSec float64 `json:"calls_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
}

func runBench(socket string, cfg benchConfig) error {
	warmup := cfg.duration / 10
	if warmup < 200*time.Millisecond {
		warmup = 200 * time.Millisecond
	}
	if warmup > time.Second {
		warmup = time.Second
	}
	enc := json.NewEncoder(os.Stdout)
	for _, payload := range cfg.payloads {
		for _, conc := range cfg.concurrency {
			row, err := benchOne(socket, payload, conc, warmup, cfg.duration)
			if err != nil {
				return fmt.Errorf("payload=%d concurrency=%d: %w", payload, conc, err)
			}
			if err := enc.Encode(row); err != nil {
				return err
			}
		}
	}
	return nil
}

// benchOne opens one connection and hammers Echo from conc goroutines,
// first for the warm-up period (not counted), then for dur.
func benchOne(socket string, payload, conc int, warmup, dur time.Duration) (benchRow, error) {
	conn, err := dial(socket, 5*time.Second)
	if err != nil {
		return benchRow{}, err
	}
	client := newClient(conn)
	defer client.Close()

	req := &types.BytesValue{Value: patterned(payload)}
	run := func(d time.Duration) (int64, time.Duration, error) {
		var (
			calls    int64
			stop     int32
			wg       sync.WaitGroup
			errOnce  sync.Once
			firstErr error
		)
		start := time.Now()
		for i := 0; i < conc; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var resp types.BytesValue
				for atomic.LoadInt32(&stop) == 0 {
					resp.Value = resp.Value[:0]
					err := client.Call(context.Background(), ServiceName, "Echo", req, &resp)
					if err == nil && len(resp.Value) != payload {
						err = fmt.Errorf("echo returned %d bytes, want %d", len(resp.Value), payload)
					}
					if err != nil {
						errOnce.Do(func() { firstErr = err })
						atomic.StoreInt32(&stop, 1)
						return
					}
					atomic.AddInt64(&calls, 1)
				}
			}()
		}
		time.Sleep(d)
		atomic.StoreInt32(&stop, 1)
		wg.Wait() // in-flight calls finish and count
		return calls, time.Since(start), firstErr
	}

	if _, _, err := run(warmup); err != nil {
		return benchRow{}, err
	}
	calls, elapsed, err := run(dur)
	if err != nil {
		return benchRow{}, err
	}
	secs := elapsed.Seconds()
	return benchRow{
		Payload:     payload,
		Concurrency: conc,
		Calls:       calls,
		Seconds:     round(secs, 3),
		CallsPerSec: round(float64(calls)/secs, 1),
		MBPerSec:    round(float64(calls)*float64(2*payload)/1e6/secs, 3),
	}, nil
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// parseInts parses a comma-separated list of integers >= min.
func parseInts(s string, min int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		if v < min {
			return nil, fmt.Errorf("%d is below %d", v, min)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}
