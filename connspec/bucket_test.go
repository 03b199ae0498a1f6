package connspec

import (
	"strings"
	"testing"
)

func TestParseBucketURL(t *testing.T) {
	tests := []struct {
		url            string
		bucket, prefix string
		err            string // substring of the error; "" for success
	}{
		{url: "gs://bkt", bucket: "bkt"},
		{url: "gs://bkt/", bucket: "bkt"},
		{url: "gs://bkt//", bucket: "bkt"},
		{url: "gs://bkt/a", bucket: "bkt", prefix: "a/"},
		{url: "gs://bkt/a/", bucket: "bkt", prefix: "a/"},
		{url: "gs://bkt/a//", bucket: "bkt", prefix: "a/"},
		{url: "gs://bkt//a//b///", bucket: "bkt", prefix: "a/b/"},
		{url: "gcs://bkt/a/b", bucket: "bkt", prefix: "a/b/"},
		{url: "GS://bkt/A b/ü", bucket: "bkt", prefix: "A b/ü/"},
		{url: "gs://my_bucket-1.example.com/x", bucket: "my_bucket-1.example.com", prefix: "x/"},
		{url: "gs://abc", bucket: "abc"},
		{url: "gs://" + strings.Repeat("a", 63), bucket: strings.Repeat("a", 63)},
		{url: "gs://" + strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".dd", bucket: strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".dd"},
		{url: "gs://bkt/a.b/..c/.d", bucket: "bkt", prefix: "a.b/..c/.d/"},
		{url: "gs://bkt/a\\b", bucket: "bkt", prefix: "a\\b/"},

		{url: "bkt", err: `"bkt" is not a gs:// URL`},
		{url: "s3://bkt", err: `is not a gs:// URL`},
		{url: "gs:/bkt", err: `is not a gs:// URL`},
		{url: "", err: `"" is not a gs:// URL`},
		{url: "gs://", err: "the bucket name is empty"},
		{url: "gs:///a", err: "the bucket name is empty"},
		{url: "gs://ab", err: "must be 3 to 63 characters"},
		{url: "gs://" + strings.Repeat("a", 64), err: "must be 3 to 63 characters"},
		{url: "gs://" + strings.Repeat("a.", 111) + "a", err: "must be 3 to 63 characters long (up to 222"},
		{url: "gs://" + strings.Repeat("a", 64) + ".com", err: "a dot-separated part longer than 63"},
		{url: "gs://a..b", err: "an empty dot-separated part"},
		{url: "gs://Bucket", err: "has uppercase letters"},
		{url: "gs://buck et", err: "may contain only lowercase letters"},
		{url: "gs://bück", err: "may contain only lowercase letters"},
		{url: "gs://-bkt", err: "must start and end with a letter or digit"},
		{url: "gs://bkt_", err: "must start and end with a letter or digit"},
		{url: "gs://.bkt", err: "an empty dot-separated part"},
		{url: "gs://192.168.5.4", err: "is an IP address"},
		{url: "gs://goog-data", err: `starts with "goog"`},
		{url: "gs://my-google-data", err: `contains "google"`},
		{url: "gs://my-g00gle-data", err: `contains "google"`},
		{url: "gs://bkt/a/../b", err: `a ".." segment`},
		{url: "gs://bkt/./b", err: `a "." segment`},
		{url: "gs://bkt/..", err: `a ".." segment`},
		{url: "gs://bkt/a\x00b", err: "NUL, CR or LF"},
		{url: "gs://bkt/a\nb", err: "NUL, CR or LF"},
		{url: "gs://bkt/\xff", err: "not valid UTF-8"},
		{url: "gs://bkt/" + strings.Repeat("a", 1024), err: "GCS object names are at most 1024"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			b, p, err := ParseBucketURL(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseBucketURL(%q) = %q, %q, %v; want error containing %q", tc.url, b, p, err, tc.err)
				}
				if b != "" || p != "" {
					t.Errorf("results %q, %q returned with an error", b, p)
				}
				return
			}
			if err != nil || b != tc.bucket || p != tc.prefix {
				t.Fatalf("ParseBucketURL(%q) = %q, %q, %v; want %q, %q", tc.url, b, p, err, tc.bucket, tc.prefix)
			}
		})
	}
}
