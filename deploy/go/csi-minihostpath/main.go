// Command csi-minihostpath is a small CSI plugin for minikubelet's tests and dev cluster: every
// volume is a directory VOLUMES/HANDLE (--volumes-dir, default STATE/volumes), staged and
// published with bind mounts. With --nodeid it serves the Node service (one instance per node);
// with --controller the Controller service (CreateVolume/DeleteVolume, for external-provisioner).
// Instances on one machine that share --volumes-dir see each other's volumes. With
// --registration-dir it also serves the kubelet plugin-registration protocol on
// DIR/DRIVER-reg.sock, as node-driver-registrar does for real drivers.
package main

import (
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

const version = "0.1.0"

func listen(path string) net.Listener {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		log.Fatalf("mkdir %s: %v", filepath.Dir(path), err)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		log.Fatalf("listen %s: %v", path, err)
	}
	return l
}

func main() {
	endpoint := flag.String("endpoint", "", "unix socket path of the CSI service")
	name := flag.String("drivername", "minihostpath.csi.minikubelet.dev", "CSI driver name")
	nodeID := flag.String("nodeid", "", "node ID returned by NodeGetInfo; empty: no Node service")
	stateDir := flag.String("state-dir", "", "directory for the plugin's state (request records, volumes by default)")
	volumesDir := flag.String("volumes-dir", "", "directory holding one directory per volume (default STATE/volumes); share it between instances")
	withController := flag.Bool("controller", false, "serve the CSI Controller service (CreateVolume, DeleteVolume)")
	maxVolumes := flag.Int64("max-volumes-per-node", 0, "NodeGetInfo max_volumes_per_node (0: unlimited)")
	regDir := flag.String("registration-dir", "", "kubelet plugins_registry dir; empty: do not register")
	flag.Parse()
	if *endpoint == "" || *stateDir == "" || (*nodeID == "" && !*withController) {
		log.Fatal("--endpoint, --state-dir and --nodeid and/or --controller are required")
	}
	if *volumesDir == "" {
		*volumesDir = filepath.Join(*stateDir, "volumes")
	}
	if *regDir != "" && *nodeID == "" {
		log.Fatal("--registration-dir needs --nodeid")
	}
	d := &driver{name: *name, nodeID: *nodeID, stateDir: *stateDir, volumesDir: *volumesDir,
		withController: *withController, maxVolumes: *maxVolumes}

	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(srv, d)
	if *nodeID != "" {
		csi.RegisterNodeServer(srv, d)
	}
	if *withController {
		csi.RegisterControllerServer(srv, &controller{volumesDir: *volumesDir})
	}
	go func() {
		if err := srv.Serve(listen(*endpoint)); err != nil {
			log.Fatalf("csi server: %v", err)
		}
	}()
	log.Printf("%s %s serving CSI on %s (node %q, controller %v, volumes %s)", *name, version, *endpoint, *nodeID, *withController, *volumesDir)

	var reg *grpc.Server
	regSocket := ""
	if *regDir != "" {
		regSocket = filepath.Join(*regDir, *name+"-reg.sock")
		reg = grpc.NewServer(grpc.UnaryInterceptor(logCalls))
		registerapi.RegisterRegistrationServer(reg, &registration{name: *name, endpoint: *endpoint})
		go func() {
			if err := reg.Serve(listen(regSocket)); err != nil {
				log.Fatalf("registration server: %v", err)
			}
		}()
		log.Printf("registration socket %s", regSocket)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	if reg != nil {
		reg.Stop()
		_ = os.Remove(regSocket)
	}
	srv.Stop()
	_ = os.Remove(*endpoint)
}
