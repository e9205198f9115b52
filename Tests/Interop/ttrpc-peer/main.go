// Command ttrpc-peer is the reference ttrpc peer used by swiftkata's
// wire-interop tests and benchmarks. It is built from Debian's packaged
// containerd/ttrpc (1.1.x) in GOPATH mode; see ../build-peer.sh.
//
// Subcommands:
//
//	serve        -socket PATH                 run the Echo service (prints READY)
//	check-server -socket PATH                 run the interop checklist against a server
//	bench        -payloads -concurrency -duration
//	                                          Go client vs. a forked Go server
//	bench-client -socket PATH -payloads -concurrency -duration
//	                                          Go client vs. an already running server
package main

import (
	"fmt"
	"os"
)

const usage = `usage: ttrpc-peer <command> [flags]

commands:
  serve         -socket PATH
      Serve ` + ServiceName + ` on a unix socket. Prints "READY" once
      listening; exits on SIGTERM/SIGINT or when stdin reaches EOF
      (disable the latter with -exit-on-stdin-eof=false).
  check-server  -socket PATH [-wait 5s] [-timeout 10s]
      Act as a ttrpc client against a server implementing the same service
      and print "PASS <name>" / "FAIL <name>: <detail>" per check (plus
      informational "INFO ..." lines). Exit status 0 only if all pass.
  bench         [-payloads 0,1024,65536] [-concurrency 1,16] [-duration 2s]
      Fork "serve" as a child process and benchmark Echo over one client
      connection; one JSON line per (payload, concurrency) row.
  bench-client  -socket PATH [-payloads ...] [-concurrency ...] [-duration ...]
      Like bench, but against an already running server.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]

	var err error
	switch cmd {
	case "serve":
		err = serveMain(args)
	case "check-server":
		err = checkMain(args)
	case "bench":
		err = benchMain(args)
	case "bench-client":
		err = benchClientMain(args)
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "ttrpc-peer: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		if err != errChecksFailed {
			fmt.Fprintf(os.Stderr, "ttrpc-peer %s: %v\n", cmd, err)
		}
		os.Exit(1)
	}
}
