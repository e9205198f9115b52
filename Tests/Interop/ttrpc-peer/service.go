package main

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/ttrpc"
	"github.com/gogo/protobuf/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServiceName is the ttrpc service implemented by both the Go peer and the
// Swift side.
const ServiceName = "swiftkata.test.v1.Echo"

// registerEcho registers the test service on srv.
func registerEcho(srv *ttrpc.Server) {
	srv.Register(ServiceName, map[string]ttrpc.Method{
		"Echo":     echoMethod,
		"Fail":     failMethod,
		"Metadata": metadataMethod,
		"Sleep":    sleepMethod,
	})
}

// echoMethod returns the request bytes unchanged.
func echoMethod(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req types.BytesValue
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	return &types.BytesValue{Value: req.Value}, nil
}

// failMethod parses "<code>:<message>" and returns that status as an error.
func failMethod(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req types.StringValue
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	codeText, msg, ok := strings.Cut(req.Value, ":")
	code, err := strconv.ParseUint(codeText, 10, 32)
	if !ok || err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Fail: want \"<code>:<message>\", got %q", req.Value)
	}
	if codes.Code(code) == codes.OK {
		// status.Error(OK, ...) is nil; answer with an empty message instead.
		return &types.StringValue{}, nil
	}
	return nil, status.Error(codes.Code(code), msg)
}

// metadataMethod returns the values of one incoming metadata key joined by ",".
func metadataMethod(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req types.StringValue
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	var values []string
	if md, ok := ttrpc.GetMetadata(ctx); ok {
		values, _ = md.Get(req.Value)
	}
	return &types.StringValue{Value: strings.Join(values, ",")}, nil
}

// sleepMethod sleeps for a Go duration, honouring the request deadline, and
// reports the remaining deadline it saw on entry.
func sleepMethod(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req types.StringValue
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	d, err := time.ParseDuration(req.Value)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "Sleep: bad duration %q: %v", req.Value, err)
	}

	reply := "slept nodeadline"
	if dl, ok := ctx.Deadline(); ok {
		reply = "slept deadline=" + strconv.FormatInt(time.Until(dl).Milliseconds(), 10)
	}

	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return &types.StringValue{Value: reply}, nil
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			return nil, status.Error(codes.DeadlineExceeded, "Sleep: deadline exceeded")
		}
		return nil, status.Error(codes.Canceled, "Sleep: canceled")
	}
}
