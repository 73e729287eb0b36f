// grpc-health: a tiny gRPC server for probe tests. It serves the standard health service
// (grpc.health.v1) on -port (default 9090), SERVING while the file named by -down does not
// exist and, with -healthy-for, until that long after start; NOT_SERVING otherwise
// (re-checked every 200 ms).
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	port := flag.Int("port", 9090, "TCP port to listen on")
	down := flag.String("down", "/tmp/down", "while this file exists, report NOT_SERVING")
	healthyFor := flag.Duration("healthy-for", 0, "report NOT_SERVING after this long (0: never)")
	flag.Parse()
	started := time.Now()
	lis, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	h := health.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	go func() {
		for {
			status := healthpb.HealthCheckResponse_SERVING
			if _, err := os.Stat(*down); err == nil || (*healthyFor > 0 && time.Since(started) > *healthyFor) {
				status = healthpb.HealthCheckResponse_NOT_SERVING
			}
			h.SetServingStatus("", status)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	fmt.Printf("grpc-health serving on :%d\n", *port)
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
