package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// record is what the driver writes down about a published volume, so that a restarted driver
// finds what it left behind (state dir volumes/<id>.json). It never holds secrets: a volume
// whose credentials came with the request cannot be re-served from it and waits for the
// kubelet to publish it again (CSIDriver requiresRepublish).
type record struct {
	VolumeID   string            `json:"volumeID"`
	TargetPath string            `json:"targetPath"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Readonly is the request's readonly flag or a read-only access mode.
	Readonly bool `json:"readonly"`
	// RequestSecrets says the credentials came from the request (nodePublishSecretRef).
	RequestSecrets bool `json:"requestSecrets"`
	// Credentials describes the credential source chosen (never key material).
	Credentials string    `json:"credentials"`
	Bucket      string    `json:"bucket"`
	Prefix      string    `json:"prefix"`
	Published   time.Time `json:"published"`
}

// publishID names a publication (one target path) in the state dir: the FUSE mount, the
// staging directory and the record. It is a hash: target paths are long and nested.
func publishID(target string) string {
	h := sha256.Sum256([]byte(target))
	return hex.EncodeToString(h[:8])
}

// state is the driver's state directory:
//
//	volumes/<id>.json   one record per published target
//	mnt/<id>/           the volume's FUSE mount; its one directory is bind-mounted at the target
//	staging/<id>/       files being written, until uploaded
type state struct{ dir string }

func (s state) recordPath(id string) string { return filepath.Join(s.dir, "volumes", id+".json") }
func (s state) fuseDir(id string) string    { return filepath.Join(s.dir, "mnt", id) }
func (s state) stagingDir(id string) string { return filepath.Join(s.dir, "staging", id) }
func (s state) ensure() error {
	for _, d := range []string{"volumes", "mnt", "staging"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return nil
}

// save writes r atomically (temporary file, rename).
func (s state) save(r record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := s.recordPath(publishID(r.TargetPath))
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing the volume record: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("writing the volume record: %w", err)
	}
	return nil
}

func (s state) remove(id string) error {
	if err := os.Remove(s.recordPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the volume record: %w", err)
	}
	return nil
}

// load returns the records of a previous run; unreadable ones are reported and skipped.
func (s state) load() (recs []record, bad []error) {
	files, _ := filepath.Glob(filepath.Join(s.dir, "volumes", "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		var r record
		if err := json.Unmarshal(data, &r); err != nil || r.TargetPath == "" || r.VolumeID == "" {
			bad = append(bad, fmt.Errorf("%s: not a volume record (%v); removing it", f, err))
			os.Remove(f)
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad
}
