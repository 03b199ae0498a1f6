package creds

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plxfs/plxfs/connspec"
)

// TestOSEnvSecretVolume resolves against a real directory laid out the way Kubernetes mounts a
// secret: items are symbolic links into a timestamped ..data directory.
func TestOSEnvSecretVolume(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_01_01_00_00_00.000000000")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "gc-secret.json"), saKey(nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "gc-secret.json"), filepath.Join(dir, "gc-secret.json")); err != nil {
		t.Fatal(err)
	}
	env := OSEnv()
	env.LookupEnv = EnvFrom(nil, nil).LookupEnv // the files are real, the variables are not
	c := conn(func(c *connspec.Connection) { c.Secret = &connspec.Ref{Name: "gcs-secret", MountPath: dir} })
	got, err := Resolve(c, env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "secret gcs-secret mounted at " + dir + " (gc-secret.json)"; got.Source != want || got.Type != TypeServiceAccount {
		t.Errorf("got %s (%s), want %s (service_account)", got.Source, got.Type, want)
	}
}

func TestOSEnvReadFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(small, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, maxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	read := OSEnv().ReadFile
	if b, err := read(small); err != nil || string(b) != "abc" {
		t.Errorf("ReadFile(small) = %q, %v", b, err)
	}
	if _, err := read(big); !errors.Is(err, errTooLarge) {
		t.Errorf("ReadFile(big) error = %v, want errTooLarge", err)
	}
	// A key path pointing at a device must not hang: the read stops at the cap.
	if _, err := read("/dev/zero"); !errors.Is(err, errTooLarge) {
		t.Errorf("ReadFile(/dev/zero) error = %v, want errTooLarge", err)
	}
	if _, err := read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) error = %v, want fs.ErrNotExist", err)
	}
}

// TestOSEnvDevice checks that a key path naming a device is refused before it is read.
func TestOSEnvDevice(t *testing.T) {
	env := OSEnv()
	env.LookupEnv = EnvFrom(map[string]string{"GC_KEY_PATH": "/dev/null"}, nil).LookupEnv
	_, err := Resolve(conn(nil), env, Options{})
	if err == nil || !strings.Contains(err.Error(), "/dev/null is not a regular file") {
		t.Errorf("Resolve with GC_KEY_PATH=/dev/null: %v", err)
	}
}

func TestEnvFrom(t *testing.T) {
	env := EnvFrom(map[string]string{"A": "1"}, nil)
	if v, ok := env.LookupEnv("A"); !ok || v != "1" {
		t.Errorf("LookupEnv(A) = %q, %v", v, ok)
	}
	if _, ok := env.LookupEnv("B"); ok {
		t.Errorf("LookupEnv(B) found")
	}
	if _, err := env.Stat("/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat with no filesystem: %v", err)
	}
	if _, err := env.ReadFile("/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile with no filesystem: %v", err)
	}
	// Errors name the path as the caller gave it.
	var pe *fs.PathError
	if _, err := EnvFrom(nil, os.DirFS(t.TempDir())).ReadFile("/etc/missing"); !errors.As(err, &pe) || pe.Path != "/etc/missing" {
		t.Errorf("ReadFile error = %v, want a PathError for /etc/missing", err)
	}
}
