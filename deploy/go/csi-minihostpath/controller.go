package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// defaultCapacity is what a CreateVolume without a capacity range gets (1 GiB).
const defaultCapacity int64 = 1 << 30

// ProvisionedKey marks a volume context from CreateVolume: the node side then requires the
// volume directory to exist instead of creating it (see driver.volumeDir).
const ProvisionedKey = "minihostpath.csi.minikubelet.dev/provisioned"

// controller is the CSI Controller service: CreateVolume makes the directory VOLUMES/HANDLE
// (VOLUMES is --volumes-dir, shared by every instance on this machine, so node instances find
// it) and records the request in VOLUMES/.meta/HANDLE.json; DeleteVolume removes both.
type controller struct {
	csi.UnimplementedControllerServer
	volumesDir string
	mu         sync.Mutex
}

// volumeMeta is what CreateVolume records next to a volume (and returns again on a retry).
type volumeMeta struct {
	Name          string            `json:"name"`
	VolumeID      string            `json:"volumeId"`
	CapacityBytes int64             `json:"capacityBytes"`
	Node          string            `json:"node,omitempty"`
	Parameters    map[string]string `json:"parameters,omitempty"`
}

func (c *controller) metaPath(id string) string {
	return filepath.Join(c.volumesDir, ".meta", id+".json")
}

// volumeIDFor maps a CreateVolume name (external-provisioner sends pvc-UID) to a volume ID the
// node side accepts; other names get a hash, so the same name always gives the same ID.
func volumeIDFor(name string) string {
	if validHandle.MatchString(name) {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "vol-" + hex.EncodeToString(sum[:16])
}

func capacityOf(r *csi.CapacityRange) (int64, error) {
	req, lim := r.GetRequiredBytes(), r.GetLimitBytes()
	if req < 0 || lim < 0 || (lim > 0 && req > lim) {
		return 0, status.Errorf(codes.OutOfRange, "invalid capacity range: required %d, limit %d", req, lim)
	}
	switch {
	case req > 0:
		return req, nil
	case lim > 0 && lim < defaultCapacity:
		return lim, nil
	default:
		return defaultCapacity, nil
	}
}

// requestedNode picks the node the volume must be reachable from: the first preferred
// topology (external-provisioner puts the selected node first), else the first requisite one.
func requestedNode(a *csi.TopologyRequirement) string {
	for _, t := range append(a.GetPreferred(), a.GetRequisite()...) {
		if n := t.GetSegments()[TopologyKey]; n != "" {
			return n
		}
	}
	return ""
}

func (c *controller) response(m *volumeMeta) *csi.CreateVolumeResponse {
	v := &csi.Volume{
		VolumeId:      m.VolumeID,
		CapacityBytes: m.CapacityBytes,
		VolumeContext: map[string]string{ProvisionedKey: "true"},
	}
	if m.Node != "" {
		v.AccessibleTopology = []*csi.Topology{{Segments: map[string]string{TopologyKey: m.Node}}}
	}
	return &csi.CreateVolumeResponse{Volume: v}
}

func (c *controller) readMeta(id string) (*volumeMeta, error) {
	b, err := os.ReadFile(c.metaPath(id))
	if err != nil {
		return nil, err
	}
	var m volumeMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", c.metaPath(id), err)
	}
	return &m, nil
}

func (c *controller) CreateVolume(_ context.Context, r *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if r.Name == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if len(r.VolumeCapabilities) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	for _, vc := range r.VolumeCapabilities {
		if vc.GetBlock() != nil {
			return nil, status.Error(codes.InvalidArgument, "block volumes are not supported")
		}
	}
	if r.VolumeContentSource != nil {
		return nil, status.Error(codes.InvalidArgument, "volume content sources (snapshots, clones) are not supported")
	}
	capacity, err := capacityOf(r.CapacityRange)
	if err != nil {
		return nil, err
	}
	m := &volumeMeta{
		Name: r.Name, VolumeID: volumeIDFor(r.Name), CapacityBytes: capacity,
		Node: requestedNode(r.AccessibilityRequirements), Parameters: r.Parameters,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A retry of the same request returns the volume made the first time.
	if old, err := c.readMeta(m.VolumeID); err == nil {
		if old.Name != m.Name || old.CapacityBytes != m.CapacityBytes {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s exists with name %q and capacity %d", m.VolumeID, old.Name, old.CapacityBytes)
		}
		return c.response(old), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "read volume metadata: %v", err)
	}
	dir := filepath.Join(c.volumesDir, m.VolumeID)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, status.Errorf(codes.Internal, "mkdir %s: %v", dir, err)
	}
	_ = os.Chmod(dir, 0o777)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode volume metadata: %v", err)
	}
	if err := writeFileAtomic(c.metaPath(m.VolumeID), b); err != nil {
		return nil, status.Errorf(codes.Internal, "write volume metadata: %v", err)
	}
	return c.response(m), nil
}

func (c *controller) DeleteVolume(_ context.Context, r *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if !validHandle.MatchString(r.VolumeId) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid volume id %q", r.VolumeId)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A volume that is already gone is deleted (the call is idempotent).
	if err := os.RemoveAll(filepath.Join(c.volumesDir, r.VolumeId)); err != nil {
		return nil, status.Errorf(codes.Internal, "remove volume %s: %v", r.VolumeId, err)
	}
	if err := os.Remove(c.metaPath(r.VolumeId)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "remove volume metadata: %v", err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (c *controller) ValidateVolumeCapabilities(_ context.Context, r *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if !validHandle.MatchString(r.VolumeId) || len(r.VolumeCapabilities) == 0 {
		return nil, status.Error(codes.InvalidArgument, "a valid volume_id and volume_capabilities are required")
	}
	if _, err := os.Stat(filepath.Join(c.volumesDir, r.VolumeId)); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", r.VolumeId, err)
	}
	for _, vc := range r.VolumeCapabilities {
		if vc.GetBlock() != nil {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: "block volumes are not supported"}, nil
		}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: r.VolumeContext, VolumeCapabilities: r.VolumeCapabilities, Parameters: r.Parameters,
	}}, nil
}

func (c *controller) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: []*csi.ControllerServiceCapability{{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{
			Type: csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME}},
	}}}, nil
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
