package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/plxfs/plxfs/internal/emulator"
)

// csiDriver is one `plxfs csi` process with its gRPC client.
type csiDriver struct {
	t        *testing.T
	srv      *emulator.Server
	dir      string // state, cache and socket live here across restarts
	conf     string
	cmd      *exec.Cmd
	log      *lockedBuffer
	exited   chan struct{}
	conn     *grpc.ClientConn
	node     csipb.NodeClient
	identity csipb.IdentityClient
}

func startCSI(t *testing.T, srv *emulator.Server, conf string) *csiDriver {
	d := &csiDriver{t: t, srv: srv, dir: t.TempDir(), conf: conf, log: &lockedBuffer{}}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("driver log:\n%s", d.log.String())
		}
	})
	return d
}

func (d *csiDriver) sock() string { return filepath.Join(d.dir, "csi.sock") }

func (d *csiDriver) start() {
	t := d.t
	t.Helper()
	os.Remove(d.sock())
	args := []string{"csi", "--endpoint", "unix://" + d.sock(), "--node-id", "node-1",
		"--storage-endpoint", d.srv.URL(), "--state-dir", filepath.Join(d.dir, "state"),
		"--cache-dir", filepath.Join(d.dir, "cache"), "--cache-size", "64MiB", "--chunk-size", "1MiB",
		"--grace-period", "30s", "--log-level", "debug"}
	if d.conf != "" {
		args = append(args, "--config", d.conf)
	}
	d.cmd = exec.Command(plxfsBin, args...)
	d.cmd.SysProcAttr = dieWithTest()
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.exited = make(chan struct{})
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	conn, err := grpc.NewClient("unix://"+d.sock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	d.conn, d.node, d.identity = conn, csipb.NewNodeClient(conn), csipb.NewIdentityClient(conn)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := d.identity.Probe(ctx, &csipb.ProbeRequest{})
		cancel()
		if err == nil && r.GetReady().GetValue() {
			return
		}
		select {
		case <-d.exited:
			t.Fatalf("plxfs csi exited early:\n%s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("plxfs csi not ready after 60s (%v):\n%s", err, d.log.String())
		}
	}
}

// stop sends SIGTERM (pending uploads finish, volumes are unmounted, records kept).
func (d *csiDriver) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.conn.Close()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *csiDriver) kill() {
	d.conn.Close()
	d.cmd.Process.Kill()
	<-d.exited
}

func mountCap() *csipb.VolumeCapability {
	return &csipb.VolumeCapability{
		AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
		AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func (d *csiDriver) publish(id, target string, attrs, secrets map[string]string, ro bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := d.node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{VolumeId: id, TargetPath: target,
		VolumeCapability: mountCap(), VolumeContext: attrs, Secrets: secrets, Readonly: ro})
	return err
}

func (d *csiDriver) unpublish(id, target string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err := d.node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target})
	return err
}

// records reads the driver's volume records, by target path.
func (d *csiDriver) records() map[string]map[string]any {
	files, _ := filepath.Glob(filepath.Join(d.dir, "state", "volumes", "*.json"))
	out := map[string]map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			d.t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(data, &r); err != nil {
			d.t.Fatal(err)
		}
		out[r["targetPath"].(string)] = r
	}
	return out
}

const csiBucket = "csi-bucket"

// TestCSIPublishReadWrite publishes a catalog connection, reads an object written to the
// bucket, writes a file through the volume, unpublishes, and finds the object in the bucket.
// Publishing twice is idempotent; bad attributes are InvalidArgument naming the attribute.
func TestCSIPublishReadWrite(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{csiBucket}})
	if err := srv.PutObject(csiBucket, "ds/train/a.csv", []byte("x,y\n1,2\n"), ""); err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, "conns.yaml", "connections:\n- name: ds1\n  kind: gcs\n  schema: {bucket: \"gs://"+csiBucket+"/ds\"}\n")
	d := startCSI(t, srv, conf)
	target := filepath.Join(t.TempDir(), "pods", "uid1", "volumes", "data")
	attrs := map[string]string{"connection": "ds1", "cacheSize": "16MiB", "csi.storage.k8s.io/ephemeral": "true"}
	if err := d.publish("csi-abc", target, attrs, nil, false); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if err := d.publish("csi-abc", target, attrs, nil, false); err != nil {
		t.Fatalf("publishing the same volume at the same target again: %v", err)
	}
	if err := d.publish("csi-other", target, attrs, nil, false); status.Code(err) != codes.AlreadyExists {
		t.Errorf("another volume at a published target: got %v, want AlreadyExists", err)
	}
	got, err := os.ReadFile(filepath.Join(target, "train", "a.csv"))
	if err != nil || string(got) != "x,y\n1,2\n" {
		t.Fatalf("reading through the volume: %q, %v", got, err)
	}
	data := genBytes(7, 3<<20+17)
	if err := os.WriteFile(filepath.Join(target, "out", "model.bin"), data, 0o644); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
	if err := os.Mkdir(filepath.Join(target, "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(target, "out", "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	// Unpublish with the file still open: its pending upload finishes before the unmount.
	if err := d.unpublish("csi-abc", target); err != nil {
		t.Fatalf("unpublish: %v", err)
	}
	f.Close()
	if s, n := objectSHA(t, srv, csiBucket, "ds/out/model.bin"); s != sha(data) || n != int64(len(data)) {
		t.Errorf("object after unpublish: %d bytes, sha %s; want %d bytes, sha %s", n, s, len(data), sha(data))
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target path after unpublish: %v, want it removed", err)
	}
	if err := d.unpublish("csi-abc", target); err != nil {
		t.Errorf("unpublishing again: %v, want success (idempotent)", err)
	}
	if len(d.records()) != 0 {
		t.Errorf("records left after unpublish: %v", d.records())
	}

	for _, tc := range []struct {
		attrs map[string]string
		want  string
	}{
		{map[string]string{"connection": "ds1", "cacheSize": "lots"}, `"cacheSize"`},
		{map[string]string{"connection": "ds1", "cacheSize": "1TiB"}, `"cacheSize"`},
		{map[string]string{"connection": "nope"}, `"connection"`},
		{map[string]string{"connection": "ds1", "bucket": "gs://b"}, `"connection" and "bucket"`},
		{map[string]string{"bucket": "gs://" + csiBucket, "conection": "x"}, `"conection"`},
		{map[string]string{"bucket": "gs://" + csiBucket, "ttl": "soon"}, `"ttl"`},
		{map[string]string{"bucket": "gs://" + csiBucket, "fileMode": "999"}, `"fileMode"`},
		{map[string]string{"bucket": "gs://" + csiBucket, "secretPath": "relative/key.json"}, `"secretPath"`},
	} {
		err := d.publish("csi-bad", filepath.Join(t.TempDir(), "t"), tc.attrs, nil, false)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("attributes %v: got %v, want InvalidArgument naming %s", tc.attrs, err, tc.want)
		}
	}
}

// testKey returns a service-account key JSON with a fresh RSA key; marker names it.
func testKey(t *testing.T, marker string) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	b, _ := json.Marshal(map[string]string{"type": "service_account", "project_id": "p-" + marker,
		"private_key_id": "kid-" + marker, "private_key": string(pemKey),
		"client_email": marker + "@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"})
	return b
}

// TestCSITwoCredentials publishes two volumes of two connections at once, one whose key is a
// secret mounted for the driver (the connection's secret.mountPath), one whose key comes
// with the request (a PersistentVolume's nodePublishSecretRef). The emulator checks no
// credentials, so the test checks which source each volume resolved, and that no key
// material reaches the log.
func TestCSITwoCredentials(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{csiBucket, "csi-other"}})
	srv.PutObject(csiBucket, "a/one.txt", []byte("one"), "")
	srv.PutObject("csi-other", "b/two.txt", []byte("two"), "")
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "gc-secret.json"), testKey(t, "mounted"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, "conns.yaml", fmt.Sprintf(`connections:
- name: ds-a
  kind: gcs
  schema: {bucket: "gs://%s/a"}
  secret: {name: secret-a, mountPath: %s}
- name: ds-b
  kind: gcs
  schema: {bucket: "gs://csi-other/b"}
`, csiBucket, secretDir))
	d := startCSI(t, srv, conf)
	root := t.TempDir()
	ta, tb := filepath.Join(root, "a"), filepath.Join(root, "b")
	reqKey := testKey(t, "request")
	if err := d.publish("vol-a", ta, map[string]string{"connection": "ds-a"}, nil, true); err != nil {
		t.Fatalf("publish a: %v", err)
	}
	if err := d.publish("ds-b", tb, nil, map[string]string{"gc-secret.json": string(reqKey)}, true); err != nil {
		t.Fatalf("publish b (volume ID = connection name, key from the request): %v", err)
	}
	for p, want := range map[string]string{filepath.Join(ta, "one.txt"): "one", filepath.Join(tb, "two.txt"): "two"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	if err := os.WriteFile(filepath.Join(ta, "new.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to a read-only volume: %v, want EROFS", err)
	}
	recs := d.records()
	if src, _ := recs[ta]["credentials"].(string); !strings.Contains(src, secretDir) || !strings.Contains(src, "secret-a") {
		t.Errorf("volume a resolved credentials from %q, want the secret mounted at %s", src, secretDir)
	}
	if src, _ := recs[tb]["credentials"].(string); !strings.Contains(src, "nodePublishSecretRef") {
		t.Errorf("volume b resolved credentials from %q, want the request's nodePublishSecretRef", src)
	}
	if recs[tb]["requestSecrets"] != true {
		t.Errorf("volume b's record does not say its key came with the request: %v", recs[tb])
	}
	// On an emulator no key is sent, and the log says so, as plxfs mount's does.
	if l := d.log.String(); !strings.Contains(l, `credentials="none (emulator; against GCS: `) || strings.Contains(l, `credentials="application default`) {
		t.Errorf("the driver's publish log does not say that no credentials are used on an emulator:\n%s", l)
	}
	for _, leak := range []string{"PRIVATE KEY", "kid-request", "kid-mounted"} {
		if strings.Contains(d.log.String(), leak) {
			t.Errorf("the driver's log contains %q", leak)
		}
		for _, r := range recs {
			if b, _ := json.Marshal(r); bytes.Contains(b, []byte(leak)) {
				t.Errorf("a volume record contains %q", leak)
			}
		}
	}
	// A request secret without a key is refused, naming keys only.
	err := d.publish("ds-b", filepath.Join(root, "c"), nil, map[string]string{"password": "hunter2"}, true)
	if status.Code(err) != codes.InvalidArgument || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "password") {
		t.Errorf("secret without a key: %v", err)
	}
	for _, tg := range []string{ta, tb} {
		if err := d.unpublish(filepath.Base(tg), tg); err != nil && status.Code(err) != codes.NotFound {
			t.Errorf("unpublish %s: %v", tg, err)
		}
	}
}

// TestCSIUnpublishWhileWriting unpublishes a volume while a file is being written in it: the
// bucket then holds either no object or exactly the bytes of whole writes, never a partial
// upload, and the writer hears of the end through an error.
func TestCSIUnpublishWhileWriting(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{csiBucket}})
	d := startCSI(t, srv, "")
	target := filepath.Join(t.TempDir(), "data")
	vol := "gs://" + csiBucket + "/w"
	if err := d.publish(vol, target, nil, nil, false); err != nil {
		t.Fatal(err)
	}
	const block = 64 << 10
	data := genBytes(9, 256*block)
	f, err := os.Create(filepath.Join(target, "stream.bin"))
	if err != nil {
		t.Fatal(err)
	}
	written := make(chan int, 1)
	started := make(chan struct{})
	go func() {
		n := 0
		for i := 0; i < 256; i++ {
			if _, err := f.Write(data[i*block : (i+1)*block]); err != nil {
				break
			}
			n++
			if n == 8 {
				close(started)
			}
			time.Sleep(2 * time.Millisecond)
		}
		f.Close()
		written <- n
	}()
	<-started
	if err := d.unpublish(vol, target); err != nil {
		t.Fatalf("unpublish during a write: %v", err)
	}
	n := <-written
	// Let a flush of the detached mount (if the writer's close came after the unmount) finish.
	time.Sleep(time.Second)
	obj, err := srv.GetObject(csiBucket, "w/stream.bin")
	if err != nil {
		t.Logf("no object after unpublish (writer wrote %d blocks)", n)
		return
	}
	if len(obj.Content)%block != 0 || !bytes.Equal(obj.Content, data[:len(obj.Content)]) || len(obj.Content) > n*block {
		t.Errorf("object after unpublish: %d bytes, not a run of whole writes of the %d the writer made", len(obj.Content), n)
	}
	t.Logf("writer wrote %d blocks; the object holds %d", n, len(obj.Content)/block)
}

// TestCSIDriverRestart kills the driver (SIGKILL) while two volumes are published: their mounts
// die with it; the restarted driver removes the dead mounts and serves the volumes again at
// the same targets, except one whose key came with the request, which waits for the kubelet
// to publish it again.
func TestCSIDriverRestart(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{csiBucket}})
	srv.PutObject(csiBucket, "r/f.txt", []byte("hello"), "")
	d := startCSI(t, srv, "")
	root := t.TempDir()
	ta, tb := filepath.Join(root, "a"), filepath.Join(root, "b")
	vol := "gs://" + csiBucket + "/r"
	if err := d.publish(vol, ta, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := d.publish(vol, tb, nil, map[string]string{"GC_KEYFILE_DICT": string(testKey(t, "r"))}, true); err != nil {
		t.Fatal(err)
	}
	d.kill()
	if _, err := os.ReadFile(filepath.Join(ta, "f.txt")); !isENOTCONN(err) {
		t.Fatalf("after SIGKILL the mount should be dead (ENOTCONN), got %v", err)
	}
	d.start()
	got, err := os.ReadFile(filepath.Join(ta, "f.txt"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("after the restart: %q, %v; want the volume served again", got, err)
	}
	if _, err := os.ReadFile(filepath.Join(tb, "f.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("volume with request secrets after restart: %v, want an empty target until published again", err)
	}
	// The kubelet publishes it again (CSIDriver requiresRepublish), with its secrets.
	if err := d.publish(vol, tb, nil, map[string]string{"GC_KEYFILE_DICT": string(testKey(t, "r"))}, true); err != nil {
		t.Fatalf("publishing again after the restart: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(tb, "f.txt")); err != nil || string(got) != "hello" {
		t.Errorf("republished volume: %q, %v", got, err)
	}
	for _, tg := range []string{ta, tb} {
		if err := d.unpublish(vol, tg); err != nil {
			t.Errorf("unpublish %s: %v", tg, err)
		}
		if _, err := os.Stat(tg); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after unpublish: %v", tg, err)
		}
	}
}
