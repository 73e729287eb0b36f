package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func mountCap() []*csi.VolumeCapability {
	return []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}}
}

func topo(node string) *csi.Topology {
	return &csi.Topology{Segments: map[string]string{TopologyKey: node}}
}

func TestCreateVolumeIsIdempotentAndFollowsTheSelectedNode(t *testing.T) {
	dir := t.TempDir()
	c := &controller{volumesDir: dir}
	req := &csi.CreateVolumeRequest{
		Name:               "pvc-1234",
		CapacityRange:      &csi.CapacityRange{RequiredBytes: 5 << 20},
		VolumeCapabilities: mountCap(),
		AccessibilityRequirements: &csi.TopologyRequirement{
			Requisite: []*csi.Topology{topo("node-b"), topo("node-a")},
			Preferred: []*csi.Topology{topo("node-a"), topo("node-b")},
		},
	}
	resp, err := c.CreateVolume(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	v := resp.Volume
	if v.VolumeId != "pvc-1234" || v.CapacityBytes != 5<<20 || v.VolumeContext[ProvisionedKey] != "true" {
		t.Fatalf("unexpected volume %v", v)
	}
	if len(v.AccessibleTopology) != 1 || v.AccessibleTopology[0].Segments[TopologyKey] != "node-a" {
		t.Fatalf("topology %v, want the first preferred node", v.AccessibleTopology)
	}
	if fi, err := os.Stat(filepath.Join(dir, "pvc-1234")); err != nil || !fi.IsDir() {
		t.Fatalf("volume directory: %v", err)
	}
	again, err := c.CreateVolume(context.Background(), req)
	if err != nil || again.Volume.VolumeId != v.VolumeId {
		t.Fatalf("retry: %v %v", again, err)
	}
	req.CapacityRange.RequiredBytes = 7 << 20
	if _, err := c.CreateVolume(context.Background(), req); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("other capacity, same name: %v, want AlreadyExists", err)
	}

	if _, err := c.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: "pvc-1234"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pvc-1234")); !os.IsNotExist(err) {
		t.Fatalf("volume directory left: %v", err)
	}
	if _, err := c.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: "pvc-1234"}); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestCreateVolumeWithoutTopologyOrCapacity(t *testing.T) {
	c := &controller{volumesDir: t.TempDir()}
	resp, err := c.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name: "Some Name", VolumeCapabilities: mountCap(),
	})
	if err != nil {
		t.Fatal(err)
	}
	v := resp.Volume
	if !validHandle.MatchString(v.VolumeId) || v.CapacityBytes != defaultCapacity || v.AccessibleTopology != nil {
		t.Fatalf("unexpected volume %v", v)
	}
}

func TestCreateVolumeRejectsBadRequests(t *testing.T) {
	c := &controller{volumesDir: t.TempDir()}
	block := []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}}
	for name, req := range map[string]*csi.CreateVolumeRequest{
		"no name":         {VolumeCapabilities: mountCap()},
		"no capabilities": {Name: "v"},
		"block":           {Name: "v", VolumeCapabilities: block},
		"required > limit": {Name: "v", VolumeCapabilities: mountCap(),
			CapacityRange: &csi.CapacityRange{RequiredBytes: 10, LimitBytes: 5}},
	} {
		if _, err := c.CreateVolume(context.Background(), req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNodeRequiresProvisionedVolumesToExist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	err := ensureVolumeDir(dir, map[string]string{ProvisionedKey: "true"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("got %v, want NotFound", err)
	}
	if err := ensureVolumeDir(dir, nil); err != nil {
		t.Fatalf("static volume: %v", err)
	}
}
