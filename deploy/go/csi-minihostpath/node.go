package main

import (
	"bufio"
	"context"
	"encoding/json"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer
	name, nodeID, stateDir string
	// volumesDir holds one directory per volume (--volumes-dir; default STATE/volumes).
	volumesDir string
	// withController: this instance also serves the Controller service.
	withController bool
	maxVolumes     int64
	mu             sync.Mutex
}

// TopologyKey is the one topology segment the driver reports.
const TopologyKey = "topology.minihostpath.csi.minikubelet.dev/node"

var validHandle = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,127}$`)

func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	resp, err := h(ctx, req)
	if err != nil {
		log.Printf("%s: %v", info.FullMethod, err)
	} else {
		log.Printf("%s ok", info.FullMethod)
	}
	return resp, err
}

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.name, VendorVersion: version}, nil
}

func pluginCap(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
	return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{
		Service: &csi.PluginCapability_Service{Type: t}}}
}

// GetPluginCapabilities: topology always; CONTROLLER_SERVICE only where it is served.
func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	caps := []*csi.PluginCapability{pluginCap(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS)}
	if d.withController {
		caps = append(caps, pluginCap(csi.PluginCapability_Service_CONTROLLER_SERVICE))
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:             d.nodeID,
		MaxVolumesPerNode:  d.maxVolumes,
		AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: d.nodeID}},
	}, nil
}

func nodeCap(t csi.NodeServiceCapability_RPC_Type) *csi.NodeServiceCapability {
	return &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
		Rpc: &csi.NodeServiceCapability_RPC{Type: t}}}
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{
		nodeCap(csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME),
		nodeCap(csi.NodeServiceCapability_RPC_GET_VOLUME_STATS),
	}}, nil
}

func (d *driver) volumeDir(handle string) (string, error) {
	if !validHandle.MatchString(handle) {
		return "", status.Errorf(codes.InvalidArgument, "invalid volume id %q: want lowercase letters, digits, '.' and '-'", handle)
	}
	return filepath.Join(d.volumesDir, handle), nil
}

// ensureVolumeDir creates a static volume's directory on first use; a provisioned volume
// (CreateVolume's context) must already exist in the shared volumes directory.
func ensureVolumeDir(dir string, volumeContext map[string]string) error {
	if volumeContext[ProvisionedKey] == "true" {
		if _, err := os.Stat(dir); err != nil {
			return status.Errorf(codes.NotFound, "provisioned volume %s not found (does this node plugin use the controller's --volumes-dir?): %v", filepath.Base(dir), err)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return status.Errorf(codes.Internal, "mkdir %s: %v", dir, err)
	}
	_ = os.Chmod(dir, 0o777)
	return nil
}

// isMountPoint reads /proc/self/mountinfo (field 5 is the mount point, octal-escaped).
func isMountPoint(path string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.ReplaceAll(fields[4], `\040`, " ") == path {
			return true
		}
	}
	return false
}

func bind(src, dst string, readOnly bool) error {
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return status.Errorf(codes.Internal, "mkdir %s: %v", dst, err)
	}
	if isMountPoint(dst) {
		return nil
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return status.Errorf(codes.Internal, "bind mount %s on %s: %v", src, dst, err)
	}
	if readOnly {
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(dst, 0)
			return status.Errorf(codes.Internal, "remount %s read-only: %v", dst, err)
		}
	}
	return nil
}

func unbind(path string) error {
	for isMountPoint(path) {
		if err := unix.Unmount(path, 0); err != nil {
			return status.Errorf(codes.Internal, "unmount %s: %v", path, err)
		}
	}
	return nil
}

// record keeps the last request of a kind per volume, so tests can see what the kubelet sent.
func (d *driver) record(kind, handle string, v any) {
	dir := filepath.Join(d.stateDir, "requests")
	if b, err := json.MarshalIndent(v, "", "  "); err == nil && os.MkdirAll(dir, 0o750) == nil {
		_ = os.WriteFile(filepath.Join(dir, kind+"-"+handle+".json"), b, 0o640)
	}
}

type requestRecord struct {
	Path, FsType   string
	MountFlags     []string
	AccessMode     string
	ReadOnly       bool
	VolumeContext  map[string]string
	SecretKeys     []string
	PublishContext map[string]string
}

func recordOf(path string, c *csi.VolumeCapability, ro bool, vc, sec, pc map[string]string) requestRecord {
	r := requestRecord{Path: path, ReadOnly: ro, VolumeContext: vc, PublishContext: pc}
	if m := c.GetMount(); m != nil {
		r.FsType, r.MountFlags = m.FsType, m.MountFlags
	}
	r.AccessMode = c.GetAccessMode().GetMode().String()
	for k := range sec {
		r.SecretKeys = append(r.SecretKeys, k)
	}
	return r
}

func (d *driver) NodeStageVolume(_ context.Context, r *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	dir, err := d.volumeDir(r.VolumeId)
	if err != nil {
		return nil, err
	}
	if r.StagingTargetPath == "" || r.VolumeCapability == nil {
		return nil, status.Error(codes.InvalidArgument, "staging_target_path and volume_capability are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ensureVolumeDir(dir, r.VolumeContext); err != nil {
		return nil, err
	}
	d.record("NodeStageVolume", r.VolumeId, recordOf(r.StagingTargetPath, r.VolumeCapability, false, r.VolumeContext, r.Secrets, r.PublishContext))
	if err := bind(dir, r.StagingTargetPath, false); err != nil {
		return nil, err
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (d *driver) NodeUnstageVolume(_ context.Context, r *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if r.StagingTargetPath == "" {
		return nil, status.Error(codes.InvalidArgument, "staging_target_path is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unbind(r.StagingTargetPath); err != nil {
		return nil, err
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (d *driver) NodePublishVolume(_ context.Context, r *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	dir, err := d.volumeDir(r.VolumeId)
	if err != nil {
		return nil, err
	}
	if r.TargetPath == "" || r.VolumeCapability == nil {
		return nil, status.Error(codes.InvalidArgument, "target_path and volume_capability are required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Without a staging path (inline ephemeral volumes are never staged) the volume directory
	// is published directly.
	src := r.StagingTargetPath
	if src == "" {
		if err := ensureVolumeDir(dir, r.VolumeContext); err != nil {
			return nil, err
		}
		src = dir
	} else if !isMountPoint(src) {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", r.VolumeId, src)
	}
	d.record("NodePublishVolume", r.VolumeId, recordOf(r.TargetPath, r.VolumeCapability, r.Readonly, r.VolumeContext, r.Secrets, r.PublishContext))
	if err := bind(src, r.TargetPath, r.Readonly); err != nil {
		return nil, err
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (d *driver) NodeUnpublishVolume(_ context.Context, r *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if r.TargetPath == "" {
		return nil, status.Error(codes.InvalidArgument, "target_path is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := unbind(r.TargetPath); err != nil {
		return nil, err
	}
	if err := os.Remove(r.TargetPath); err != nil && !os.IsNotExist(err) {
		return nil, status.Errorf(codes.Internal, "remove %s: %v", r.TargetPath, err)
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (d *driver) NodeGetVolumeStats(_ context.Context, r *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	if r.VolumePath == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_path is required")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(r.VolumePath, &st); err != nil {
		return nil, status.Errorf(codes.NotFound, "statfs %s: %v", r.VolumePath, err)
	}
	bs := int64(st.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}
