package connspec

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// ParseBucketURL splits "gs://BUCKET[/PREFIX]" (or "gcs://…"; the scheme is case-insensitive)
// into a bucket name checked against GCS's naming rules and a normalised prefix: "" for the whole
// bucket, otherwise "a/b/" with no leading slash and exactly one trailing slash. Empty segments
// ("a//b", a doubled trailing slash) are dropped; "." and ".." segments are rejected rather than
// resolved, because a prefix that means something other than what it says is a mistake worth
// hearing about. The prefix must be valid UTF-8 without NUL, CR or LF, as GCS requires of
// object names. Errors describe the problem only; they quote the URL, which is not a secret.
func ParseBucketURL(s string) (bucket, prefix string, err error) {
	rest, ok := cutScheme(s)
	if !ok {
		return "", "", fmt.Errorf("%q is not a gs:// URL (expected gs://BUCKET or gs://BUCKET/PREFIX)", s)
	}
	bucket, p, _ := strings.Cut(rest, "/")
	if err := checkBucketName(bucket); err != nil {
		return "", "", err
	}
	prefix, err = normalizePrefix(p)
	if err != nil {
		return "", "", err
	}
	return bucket, prefix, nil
}

func cutScheme(s string) (string, bool) {
	for _, scheme := range []string{"gs://", "gcs://"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			return s[len(scheme):], true
		}
	}
	return "", false
}

// checkBucketName applies GCS's bucket naming rules
// (https://cloud.google.com/storage/docs/buckets#naming):
//   - 3-63 characters; names with dots may have up to 222, each dot-separated part at most 63
//     (and, as DNS labels, none empty);
//   - only lowercase letters, digits, "-", "_" and ".";
//   - start and end with a letter or digit;
//   - not an IP address in dotted-decimal notation;
//   - no "goog" prefix, and no "google" or a close misspelling such as "g00gle" inside.
func checkBucketName(b string) error {
	if b == "" {
		return errors.New("the bucket name is empty (expected gs://BUCKET)")
	}
	q := fmt.Sprintf("bucket name %q", b)
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		case c >= 'A' && c <= 'Z':
			return fmt.Errorf("%s has uppercase letters; GCS bucket names are lowercase", q)
		default:
			return fmt.Errorf("%s may contain only lowercase letters, digits, '-', '_' and '.'", q)
		}
	}
	maxLen := 63
	if strings.Contains(b, ".") {
		maxLen = 222
	}
	if len(b) < 3 || len(b) > maxLen {
		return fmt.Errorf("%s must be 3 to 63 characters long (up to 222 if it contains dots)", q)
	}
	for part := range strings.SplitSeq(b, ".") {
		if part == "" {
			return fmt.Errorf("%s has an empty dot-separated part", q)
		}
		if len(part) > 63 {
			return fmt.Errorf("%s has a dot-separated part longer than 63 characters", q)
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return fmt.Errorf("%s must start and end with a letter or digit", q)
	}
	if ip, err := netip.ParseAddr(b); err == nil && ip.Is4() {
		return fmt.Errorf("%s is an IP address", q)
	}
	if strings.HasPrefix(b, "goog") {
		return fmt.Errorf("%s starts with \"goog\", which GCS reserves", q)
	}
	if strings.Contains(strings.ReplaceAll(b, "0", "o"), "google") {
		return fmt.Errorf("%s contains \"google\" (or a look-alike), which GCS reserves", q)
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func normalizePrefix(p string) (string, error) {
	if !utf8.ValidString(p) {
		return "", errors.New("the prefix is not valid UTF-8, which GCS object names must be")
	}
	if strings.ContainsAny(p, "\x00\r\n") {
		return "", errors.New("the prefix contains NUL, CR or LF, which GCS object names cannot")
	}
	var segs []string
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			continue
		case ".", "..":
			return "", fmt.Errorf("the prefix has a %q segment; write the prefix without \".\" or \"..\"", seg)
		}
		segs = append(segs, seg)
	}
	if len(segs) == 0 {
		return "", nil
	}
	prefix := strings.Join(segs, "/") + "/"
	if len(prefix) > MaxObjectName {
		return "", fmt.Errorf("the prefix is %d bytes; GCS object names are at most %d", len(prefix), MaxObjectName)
	}
	return prefix, nil
}
