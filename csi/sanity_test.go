package csi_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"
)

// sanityBucket holds the volumes csi-sanity publishes.
const sanityBucket = "sanity-bucket"

// sanitySkips are the csi-sanity specs that do not apply to plxfs, each with the reason. The
// test fails if any other spec is skipped, or if one of these runs.
var sanitySkips = []struct{ spec, why string }{
	{`\[Controller Server\]`, "plxfs has no controller service: volumes are existing buckets (skipped by name)"},
	{`GroupController`, "no group controller service: no snapshots (skipped by name)"},
	{`^Node Service should work$`, "needs the controller service (CreateVolume with topology)"},
	{`^Node Service should be idempotent$`, "needs the controller service"},
	{`^Node Service NodePublishVolume with single node multi writer capability`, "no SINGLE_NODE_MULTI_WRITER capability: every access mode is served the same"},
	{`^Node Service NodeStageVolume `, "no STAGE_UNSTAGE_VOLUME: each publish is its own mount; the node's cache is shared without staging"},
	{`^Node Service NodeUnstageVolume `, "no STAGE_UNSTAGE_VOLUME"},
	{`^Node Service NodeExpandVolume `, "no EXPAND_VOLUME: buckets have no size"},
	{`^Node Service NodeGetVolumeHealth `, "no GET_VOLUME_HEALTH (VolumeCondition is alpha in the spec's Go types)"},
	{`^Node Service NodeGetStorageHealth `, "no GET_STORAGE_HEALTH"},
}

// TestSanity runs csi-test's sanity suite against the driver over its unix socket, with real
// FUSE mounts against fake-gcs-server. plxfs is node-only; the node tests get their volumes
// from staticController, which stands for the administrator writing a PersistentVolume whose
// volumeHandle is gs://BUCKET/PREFIX.
func TestSanity(t *testing.T) {
	d := startDriver(t, sanityBucket)
	dir := t.TempDir()
	ctrlSock := filepath.Join(dir, "controller.sock")
	startStaticController(t, ctrlSock, d.Driver)

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + d.Socket
	cfg.ControllerAddress = "unix://" + ctrlSock
	cfg.TargetPath = filepath.Join(dir, "mnt")
	cfg.StagingPath = filepath.Join(dir, "staging")
	sanity.GinkgoTest(&cfg)

	var mu sync.Mutex
	matched := make([]int, len(sanitySkips))
	var ran, unexpected []string
	ginkgo.ReportAfterSuite("plxfs: check the skipped specs", func(r ginkgo.Report) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range r.SpecReports {
			if s.LeafNodeType != types.NodeTypeIt {
				continue
			}
			name := s.FullText()
			i := skipIndex(name)
			switch {
			case (s.State == types.SpecStateSkipped || s.State == types.SpecStatePending) && i >= 0:
				matched[i]++
			case s.State == types.SpecStateSkipped:
				unexpected = append(unexpected, name)
			case i >= 0:
				ran = append(ran, fmt.Sprintf("%s (%s)", name, s.State))
			}
		}
	})
	suite, reporter := ginkgo.GinkgoConfiguration()
	suite.SkipStrings = []string{`\[Controller Server\]`, `GroupController`}
	reporter.Verbose = testing.Verbose()
	gomega.RegisterFailHandler(ginkgo.Fail)
	ginkgo.RunSpecs(t, "plxfs CSI sanity", suite, reporter)

	mu.Lock()
	defer mu.Unlock()
	for _, name := range unexpected {
		t.Errorf("skipped, and not in sanitySkips: %s", name)
	}
	for _, name := range ran {
		t.Errorf("in sanitySkips, but ran: %s", name)
	}
	for i, s := range sanitySkips {
		if matched[i] == 0 {
			t.Errorf("sanitySkips %q matched no skipped spec", s.spec)
		} else {
			t.Logf("skipped %d spec(s) %s: %s", matched[i], s.spec, s.why)
		}
	}
}

func skipIndex(name string) int {
	for i, s := range sanitySkips {
		if regexp.MustCompile(s.spec).MatchString(name) {
			return i
		}
	}
	return -1
}

// staticController answers the CreateVolume and DeleteVolume calls csi-sanity makes to get a
// volume to publish: it hands out gs://sanity-bucket/NAME, which is what a pre-provisioned
// PersistentVolume's volumeHandle says. It is test scaffolding, not part of the driver.
type staticController struct {
	csipb.UnimplementedControllerServer
}

func (staticController) CreateVolume(ctx context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	return &csipb.CreateVolumeResponse{Volume: &csipb.Volume{
		VolumeId:      "gs://" + sanityBucket + "/" + req.GetName(),
		VolumeContext: map[string]string{"cacheSize": "16MiB"},
	}}, nil
}

func (staticController) DeleteVolume(context.Context, *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	return &csipb.DeleteVolumeResponse{}, nil
}

func (staticController) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	return &csipb.ControllerGetCapabilitiesResponse{}, nil
}

// startStaticController serves staticController on sock, with the driver's own Identity service
// beside it (csi-sanity asks a controller socket for the plugin's identity too).
func startStaticController(t *testing.T, sock string, identity csipb.IdentityServer) {
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	csipb.RegisterControllerServer(srv, staticController{})
	csipb.RegisterIdentityServer(srv, identity)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
}
