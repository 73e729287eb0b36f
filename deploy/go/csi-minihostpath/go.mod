// csi-minihostpath: the project's own small CSI node plugin (Identity + Node service, bind mounts
// of per-volume directories) plus the kubelet plugin-registration server that node-driver-registrar
// would otherwise provide. It exists because csi-driver-host-path, node-driver-registrar and
// external-provisioner cannot be fetched through the module proxy reachable here. It is built from
// the official CSI spec and k8s.io/kubelet pluginregistration Go modules, so the agent's hand-written
// protobuf messages are checked against the reference encoding.
module minikubelet.dev/deploy/csi-minihostpath

go 1.25.0

require (
	github.com/container-storage-interface/spec v1.12.0
	golang.org/x/sys v0.38.0
	google.golang.org/grpc v1.75.0
	k8s.io/kubelet v0.35.4
)

require (
	golang.org/x/net v0.47.0 // indirect
	golang.org/x/text v0.31.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250707201910-8d1bb00bc6a7 // indirect
	google.golang.org/protobuf v1.36.8 // indirect
)
