package control

import "time"

// Status is what a running daemon reports at GET /status. It never holds key material:
// connections name their credential source only.
type Status struct {
	Version    string    `json:"version"`
	PID        int       `json:"pid"`
	Mountpoint string    `json:"mountpoint"`
	Started    time.Time `json:"started"`
	ReadOnly   bool      `json:"read_only"`

	Connections  []Connection `json:"connections"`
	Cache        Cache        `json:"cache"`
	Uploads      Uploads      `json:"uploads"`
	Integrity    Integrity    `json:"integrity"`
	OpenHandles  int64        `json:"open_handles"`
	RecentErrors []LogRecord  `json:"recent_errors"` // oldest first
	// ErrorsLogged counts every warning and error logged since start; RecentErrors keeps the
	// last few.
	ErrorsLogged int64 `json:"errors_logged"`
}

// Connection is one mounted connection.
type Connection struct {
	Name        string `json:"name"`
	Bucket      string `json:"bucket"`
	Prefix      string `json:"prefix"`
	Credentials string `json:"credentials"` // where the credentials came from (creds.Credentials.Source)
}

// Cache is the read cache's use.
type Cache struct {
	Dir       string  `json:"dir"`
	Bytes     int64   `json:"bytes"`
	MaxBytes  int64   `json:"max_bytes"`
	Chunks    int     `json:"chunks"`
	Hits      int64   `json:"hits"`
	Misses    int64   `json:"misses"`
	HitRatio  float64 `json:"hit_ratio"` // hits / (hits + misses); 0 before any read
	Evictions int64   `json:"evictions"`
	// GCSReadBytes is what was downloaded; ServedBytes what the cache returned to reads.
	GCSReadBytes int64 `json:"gcs_read_bytes"`
	ServedBytes  int64 `json:"served_bytes"`
}

// Uploads are the daemon's uploads of written files.
type Uploads struct {
	InFlight int64 `json:"in_flight"`
	Done     int64 `json:"done"` // finished, successful or not
	Bytes    int64 `json:"bytes"`
	Failures int64 `json:"failures"`
	Pending  int   `json:"pending"` // files with changes not uploaded yet
}

// Integrity counts what the daemon did to keep answers honest and bounded.
type Integrity struct {
	// ChecksumMismatches counts fetched bytes whose CRC32C did not match the object's.
	ChecksumMismatches int64 `json:"checksum_mismatches"`
	// UploadOutcomesChecked counts uploads whose last request failed with an unknown outcome
	// and were checked against the bucket; UploadOutcomesLanded those found intact there
	// (reported as successes).
	UploadOutcomesChecked int64 `json:"upload_outcomes_checked"`
	UploadOutcomesLanded  int64 `json:"upload_outcomes_landed"`
	// HedgedRequests counts requests sent again after an attempt did not answer in time;
	// StalledCalls the calls that failed because no attempt answered.
	HedgedRequests int64 `json:"hedged_requests"`
	StalledCalls   int64 `json:"stalled_calls"`
	// CircuitsOpen is how many kinds of storage calls (metadata, reads; per bucket) fail at
	// once now because the backend failed all of them for a few seconds; CircuitOpenings
	// counts how often that began, FailedFast the calls failed at once.
	CircuitsOpen    int64 `json:"circuits_open"`
	CircuitOpenings int64 `json:"circuit_openings"`
	FailedFast      int64 `json:"failed_fast"`
	// StaleServed counts lookups and stats answered from what the daemon last knew because
	// the backend did not answer their revalidation.
	StaleServed int64 `json:"stale_served"`
}

// LogRecord is one warning or error the daemon logged.
type LogRecord struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Attrs   []Attr    `json:"attrs,omitempty"`
}

// Attr is one key=value of a LogRecord, in logging order; grouped keys are dotted ("g.key").
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// HitRatio is hits / (hits + misses), 0 when both are 0.
func HitRatio(hits, misses int64) float64 {
	if hits+misses == 0 {
		return 0
	}
	return float64(hits) / float64(hits+misses)
}
