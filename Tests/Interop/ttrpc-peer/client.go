package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/proto"
)

// maxFrame is ttrpc's maximum frame payload (the encoded envelope), 4 MiB.
const maxFrame = 4 << 20

// dial connects to a unix socket, retrying until wait has elapsed so that a
// server that is still starting up is tolerated.
func dial(socket string, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	for {
		conn, err := net.Dial("unix", socket)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newClient wraps conn in a ttrpc client with the call-tweak interceptor.
// The conn is guarded against oversized response frames, which make the
// ttrpc 1.1 client panic; they become a terminal connection error instead.
func newClient(conn net.Conn) *ttrpc.Client {
	return ttrpc.NewClient(&frameGuardConn{Conn: conn}, ttrpc.WithUnaryClientInterceptor(tweakInterceptor))
}

// callTweak lets a single call adjust its request envelope and observe the
// encoded envelope sizes. Attach it with withTweak.
type callTweak struct {
	setTimeout   bool  // replace the request's timeout_nano ...
	timeoutNano  int64 // ... with this value (0 omits the field)
	requestSize  int   // out: encoded Request envelope size
	responseSize int   // out: encoded Response envelope size (if one arrived)
}

type tweakKey struct{}

func withTweak(ctx context.Context, t *callTweak) context.Context {
	return context.WithValue(ctx, tweakKey{}, t)
}

func tweakInterceptor(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
	t, ok := ctx.Value(tweakKey{}).(*callTweak)
	if !ok {
		return invoke(ctx, req, resp)
	}
	if t.setTimeout {
		req.TimeoutNano = t.timeoutNano
	}
	t.requestSize = proto.Size(req)
	err := invoke(ctx, req, resp)
	if err == nil {
		t.responseSize = proto.Size(resp)
	}
	return err
}

// frameGuardConn tracks ttrpc frame boundaries on the read side and fails
// the connection when the peer announces a frame larger than maxFrame.
// Only the client's single receive goroutine reads, so no locking is needed.
type frameGuardConn struct {
	net.Conn
	hdr      [10]byte
	hdrLen   int
	bodyLeft int
}

func (g *frameGuardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	for i := 0; i < n; {
		if g.bodyLeft > 0 {
			k := n - i
			if k > g.bodyLeft {
				k = g.bodyLeft
			}
			i += k
			g.bodyLeft -= k
			continue
		}
		g.hdr[g.hdrLen] = p[i]
		g.hdrLen++
		i++
		if g.hdrLen == len(g.hdr) {
			g.hdrLen = 0
			length := binary.BigEndian.Uint32(g.hdr[:4])
			if length > maxFrame {
				return 0, fmt.Errorf("peer sent a %d byte frame (stream %d), over the %d byte limit",
					length, binary.BigEndian.Uint32(g.hdr[4:8]), maxFrame)
			}
			g.bodyLeft = int(length)
		}
	}
	return n, err
}

// echoEnvelopeSize is the encoded size of an Echo Request envelope without
// timeout or metadata whose BytesValue payload holds n bytes.
func echoEnvelopeSize(n int) int {
	field := func(l int) int { // tag byte + length varint + bytes
		if l == 0 {
			return 0 // proto3 omits empty fields
		}
		return 1 + proto.SizeVarint(uint64(l)) + l
	}
	return field(len(ServiceName)) + field(len("Echo")) + field(field(n))
}

// maxEchoPayload is the largest Echo payload whose request frame fits in
// maxFrame bytes.
func maxEchoPayload() int {
	n := maxFrame
	for echoEnvelopeSize(n) > maxFrame {
		n--
	}
	return n
}
