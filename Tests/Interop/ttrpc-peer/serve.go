package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
)

func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket path to listen on (required)")
	stdinEOF := fs.Bool("exit-on-stdin-eof", true, "exit when stdin reaches EOF")
	fs.Parse(args)
	if *socket == "" {
		return errors.New("-socket is required")
	}

	if err := removeStaleSocket(*socket); err != nil {
		return err
	}
	l, err := net.Listen("unix", *socket)
	if err != nil {
		return err
	}
	defer os.Remove(*socket)

	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	registerEcho(srv)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()

	// os.Stdout is unbuffered, so this line reaches the parent immediately.
	fmt.Println("READY")

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	if *stdinEOF {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			close(stdinClosed)
		}()
	}

	select {
	case <-stop:
	case <-stdinClosed:
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}

	// Give in-flight calls a moment, then drop everything.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	return nil
}

// removeStaleSocket removes a leftover socket file at path. It refuses to
// delete anything that is not a socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}
