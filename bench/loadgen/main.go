// Command loadgen is the fleet API benchmark's load generator (bench/fleet_api.py builds and
// runs it): many gateways, each holding one keep-alive mTLS connection with its own client
// certificate, long-polling or polling GET /v1/desired and sending sequenced reports.
//
//	loadgen certs --ca-cert ca.crt --ca-key ca.key --count N --out gateways.jsonl
//	loadgen run --gateways gateways.jsonl --ca ca.crt --addr 127.0.0.1:8443 [--mode longpoll|poll] ...
//
// `run` prints one JSON summary on stdout (with --sync, first a "connected" line, then it waits
// for "start UNIX_SECONDS" on stdin so several shards start their schedule together).
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen certs|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "certs":
		err = certsMain(os.Args[2:])
	case "run":
		err = runMain(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (certs, run)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
