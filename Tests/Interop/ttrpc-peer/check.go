package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var errChecksFailed = errors.New("some checks failed")

// checker runs the interop checklist against one server socket.
type checker struct {
	socket  string
	wait    time.Duration
	timeout time.Duration
	client  *ttrpc.Client
	dirty   bool // the last check failed; reconnect before the next one
	failed  int
}

func checkMain(args []string) error {
	fs := flag.NewFlagSet("check-server", flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket of the server under test (required)")
	wait := fs.Duration("wait", 5*time.Second, "how long to retry connecting")
	timeout := fs.Duration("timeout", 10*time.Second, "per-check timeout")
	fs.Parse(args)
	if *socket == "" {
		return errors.New("-socket is required")
	}

	c := &checker{socket: *socket, wait: *wait, timeout: *timeout}
	if err := c.connect(); err != nil {
		return fmt.Errorf("connect %s: %w", *socket, err)
	}
	defer func() { c.client.Close() }()

	c.runAll()
	if c.failed > 0 {
		fmt.Printf("%d check(s) failed\n", c.failed)
		return errChecksFailed
	}
	return nil
}

func (c *checker) connect() error {
	conn, err := dial(c.socket, c.wait)
	if err != nil {
		return err
	}
	c.client = newClient(conn)
	return nil
}

// check runs one named check on a healthy connection and prints its result.
// After a failed check the connection is replaced, so that one broken
// connection does not fail every later check.
func (c *checker) check(name string, fn func() error) bool {
	if c.dirty {
		c.client.Close()
		if err := c.connect(); err != nil {
			info("reconnect before %s failed: %v", name, err)
		}
	}
	return c.checkSameConn(name, fn)
}

// checkSameConn runs a check on the current connection, whatever its state.
func (c *checker) checkSameConn(name string, fn func() error) bool {
	err := fn()
	c.dirty = err != nil
	if err != nil {
		c.failed++
		fmt.Printf("FAIL %s: %v\n", name, err)
		return false
	}
	fmt.Printf("PASS %s\n", name)
	return true
}

func info(format string, args ...interface{}) {
	fmt.Printf("INFO "+format+"\n", args...)
}

func (c *checker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

func (c *checker) echo(ctx context.Context, payload []byte) ([]byte, error) {
	var resp types.BytesValue
	err := c.client.Call(ctx, ServiceName, "Echo", &types.BytesValue{Value: payload}, &resp)
	return resp.Value, err
}

func (c *checker) echoCheck(payload []byte) error {
	ctx, cancel := c.ctx()
	defer cancel()
	got, err := c.echo(ctx, payload)
	if err != nil {
		return err
	}
	return sameBytes(got, payload)
}

func (c *checker) callString(ctx context.Context, method, arg string) (string, error) {
	var resp types.StringValue
	err := c.client.Call(ctx, ServiceName, method, &types.StringValue{Value: arg}, &resp)
	return resp.Value, err
}

func (c *checker) runAll() {
	c.check("echo-small", func() error { return c.echoCheck([]byte("hello, ttrpc")) })
	c.check("echo-empty", func() error { return c.echoCheck(nil) })
	c.check("fail-not-found", func() error { return c.failCheck(codes.NotFound, "thing: not found") })
	c.check("fail-invalid-argument", func() error { return c.failCheck(codes.InvalidArgument, "bad argument: x=1") })
	c.check("metadata-roundtrip", c.metadataCheck)
	c.check("unknown-method-unimplemented", func() error {
		return c.unimplementedCheck(ServiceName, "NoSuchMethod")
	})
	c.check("unknown-service-unimplemented", func() error {
		return c.unimplementedCheck("swiftkata.test.v1.NoSuchService", "Echo")
	})
	c.check("echo-concurrent-50", c.concurrentCheck)
	c.check("echo-max-frame", c.maxFrameCheck)
	c.check("echo-oversized-rejected", c.oversizedCheck)
	// Must run on the connection that carried the oversized call.
	c.checkSameConn("echo-after-oversized", func() error { return c.echoCheck([]byte("still alive")) })
	c.check("sleep-deadline-propagated", c.sleepDeadlineCheck)
	c.check("sleep-no-deadline", c.sleepNoDeadlineCheck)
	c.check("sleep-server-deadline-exceeded", c.sleepServerDeadlineCheck)
}

func (c *checker) failCheck(code codes.Code, msg string) error {
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.callString(ctx, "Fail", fmt.Sprintf("%d:%s", code, msg))
	return expectStatus(err, code, msg)
}

func (c *checker) metadataCheck() error {
	ctx, cancel := c.ctx()
	defer cancel()
	ctx = ttrpc.WithMetadata(ctx, ttrpc.MD{"x-test": {"a", "b"}})
	got, err := c.callString(ctx, "Metadata", "x-test")
	if err != nil {
		return err
	}
	if got != "a,b" {
		return fmt.Errorf("got %q, want %q", got, "a,b")
	}
	return nil
}

func (c *checker) unimplementedCheck(service, method string) error {
	ctx, cancel := c.ctx()
	defer cancel()
	var resp types.BytesValue
	err := c.client.Call(ctx, service, method, &types.BytesValue{Value: []byte("x")}, &resp)
	return expectStatus(err, codes.Unimplemented, "")
}

// concurrentCheck issues 50 Echo calls with distinct payloads at once on the
// shared connection and verifies each reply.
func (c *checker) concurrentCheck() error {
	const n = 50
	ctx, cancel := c.ctx()
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Distinct content and length per call (up to ~49 KiB).
			payload := bytes.Repeat([]byte(fmt.Sprintf("call-%02d|", i)), 1+i*128)
			got, err := c.echo(ctx, payload)
			if err == nil {
				err = sameBytes(got, payload)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	var bad []string
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			bad = append(bad, fmt.Sprintf("call %d: %v", i, err))
		}
	}
	if len(bad) > 3 {
		bad = append(bad[:3], "...")
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d/%d calls failed: %s", failed, n, strings.Join(bad, "; "))
	}
	return nil
}

// maxFrameCheck sends an Echo whose request frame is exactly maxFrame bytes.
// timeout_nano is stripped from the envelope so the size is deterministic;
// the client context still bounds the wait.
func (c *checker) maxFrameCheck() error {
	n := maxEchoPayload()
	payload := patterned(n)
	t := &callTweak{setTimeout: true}
	ctx, cancel := c.ctx()
	defer cancel()
	got, err := c.echo(withTweak(ctx, t), payload)
	info("echo-max-frame: payload=%d request_frame=%d response_frame=%d", n, t.requestSize, t.responseSize)
	if t.requestSize != echoEnvelopeSize(n) {
		return fmt.Errorf("request frame is %d bytes, computed %d", t.requestSize, echoEnvelopeSize(n))
	}
	if err != nil {
		return err
	}
	return sameBytes(got, payload)
}

// oversizedCheck sends an Echo with 4 MiB + 1 KiB of payload. ttrpc 1.1's
// client has no send-side limit, so the server must reject the frame with
// ResourceExhausted on that stream (and keep the connection).
func (c *checker) oversizedCheck() error {
	n := maxFrame + 1024
	t := &callTweak{setTimeout: true}
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.echo(withTweak(ctx, t), patterned(n))
	st, isStatus := status.FromError(err)
	switch {
	case err == nil:
		info("echo-oversized: payload=%d request_frame=%d: call succeeded", n, t.requestSize)
	case isStatus:
		info("echo-oversized: payload=%d request_frame=%d: status code=%d (%s) message=%q",
			n, t.requestSize, st.Code(), st.Code(), st.Message())
	default:
		info("echo-oversized: payload=%d request_frame=%d: non-status error: %v", n, t.requestSize, err)
	}
	return expectStatus(err, codes.ResourceExhausted, "")
}

func (c *checker) sleepDeadlineCheck() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := c.callString(ctx, "Sleep", "50ms")
	if err != nil {
		return err
	}
	const prefix = "slept deadline="
	if !strings.HasPrefix(got, prefix) {
		return fmt.Errorf("got %q, want \"slept deadline=<ms>\"", got)
	}
	if v, err := strconv.Atoi(strings.TrimPrefix(got, prefix)); err != nil || v <= 0 || v > 2000 {
		return fmt.Errorf("got %q: remaining deadline not in (0, 2000] ms", got)
	}
	return nil
}

func (c *checker) sleepNoDeadlineCheck() error {
	// Strip timeout_nano; the client context still bounds the wait.
	ctx, cancel := c.ctx()
	defer cancel()
	got, err := c.callString(withTweak(ctx, &callTweak{setTimeout: true}), "Sleep", "1ms")
	if err != nil {
		return err
	}
	if got != "slept nodeadline" {
		return fmt.Errorf("got %q, want %q", got, "slept nodeadline")
	}
	return nil
}

// sleepServerDeadlineCheck sends timeout_nano=200ms while the client itself
// waits longer, so the DeadlineExceeded status must come from the server.
func (c *checker) sleepServerDeadlineCheck() error {
	ctx, cancel := c.ctx()
	defer cancel()
	t := &callTweak{setTimeout: true, timeoutNano: int64(200 * time.Millisecond)}
	start := time.Now()
	_, err := c.callString(withTweak(ctx, t), "Sleep", "5s")
	elapsed := time.Since(start)
	if err := expectStatus(err, codes.DeadlineExceeded, ""); err != nil {
		return err
	}
	if elapsed > 3*time.Second {
		return fmt.Errorf("server took %v to give up on a 200ms deadline", elapsed)
	}
	return nil
}

// expectStatus checks that err is a grpc status with code (and message, when
// msg is not empty).
func expectStatus(err error, code codes.Code, msg string) error {
	if err == nil {
		return fmt.Errorf("call succeeded, want status %s", code)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("got non-status error %v, want status %s", err, code)
	}
	if st.Code() != code {
		return fmt.Errorf("got code %d (%s) message %q, want code %d (%s)", st.Code(), st.Code(), st.Message(), code, code)
	}
	if msg != "" && st.Message() != msg {
		return fmt.Errorf("got message %q, want %q", st.Message(), msg)
	}
	return nil
}

func sameBytes(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Errorf("payload mismatch: got %d bytes, want %d (first difference at offset %d)", len(got), len(want), i)
}

// patterned returns n bytes of a non-trivial, position-dependent pattern.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}
