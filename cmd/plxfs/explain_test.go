package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"cloud.google.com/go/auth"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/plxfs/plxfs/store"
)

// listURL is the kind of URL the Go client puts in its errors: every query parameter.
const listURL = "https://storage.googleapis.com/storage/v1/b/gcs-datasets/o?alt=json&delimiter=%2F&endOffset=&includeFoldersAsPrefixes=false&maxResults=1000&pageToken=&prefix=train%2F&prettyPrint=false&projection=full"

// asStore wraps err as store/gcs does, under transfer's own prefix.
func asStore(sentinel, err error) error {
	if sentinel != nil {
		return fmt.Errorf("list \"train/\": gcs: list gs://gcs-datasets/path1/train/: %w: %w", sentinel, err)
	}
	return fmt.Errorf("list \"train/\": gcs: list gs://gcs-datasets/path1/train/: %w", err)
}

func urlErr(u string, err error) error { return &url.Error{Op: "Get", URL: u, Err: err} }

func TestExplainError(t *testing.T) {
	dns := &net.DNSError{Err: "no such host", Name: "storage.googleapis.com", IsNotFound: true}
	tokenDNS := &net.DNSError{Err: "no such host", Name: "oauth2.googleapis.com", IsNotFound: true}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	scope := errScope{Conn: "ds", Bucket: "gcs-datasets", Creds: "secret gcs-secret mounted at /etc/gcs (gc-secret.json)", Remote: "ds:train", Config: "conns.yaml"}
	for _, tc := range []struct {
		name    string
		err     error
		scope   func(*errScope)
		kind    errKind
		cause   string // in the message, after the connection and what was being done
		advice  string // after the cause
		notHave string
	}{
		{name: "DNS failure", err: asStore(nil, urlErr(listURL, &net.OpError{Op: "dial", Net: "tcp", Err: dns})), kind: kindDNS,
			cause: "cannot resolve host storage.googleapis.com", advice: "check the network and DNS"},
		{name: "DNS failure of the token endpoint", err: asStore(nil, urlErr(listURL, fmt.Errorf("auth: cannot fetch token: %w",
			&url.Error{Op: "Post", URL: "https://oauth2.googleapis.com/token", Err: &net.OpError{Op: "dial", Net: "tcp", Err: tokenDNS}}))),
			kind: kindDNS, cause: "cannot resolve host oauth2.googleapis.com while fetching an access token", advice: "must reach oauth2.googleapis.com"},
		{name: "DNS failure of the emulator", err: asStore(nil, urlErr("http://emu:4443/storage/v1/b/x/o?alt=json", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "emu"}})),
			scope: func(s *errScope) { s.Endpoint = "http://emu:4443" }, kind: kindDNS, cause: "cannot resolve host emu", advice: "check --endpoint"},
		{name: "connection refused", err: asStore(nil, urlErr(listURL, refused)), kind: kindRefused,
			cause: "connection to storage.googleapis.com refused", advice: "check the network, the firewall and any proxy"},
		{name: "connection refused by the emulator", err: asStore(nil, urlErr("http://127.0.0.1:1/storage/v1/b/x/o?alt=json", refused)),
			scope: func(s *errScope) { s.Endpoint = "http://127.0.0.1:1" }, kind: kindRefused, cause: "connection to 127.0.0.1 refused", advice: "is the emulator running at http://127.0.0.1:1?"},
		{name: "TLS error", err: asStore(nil, urlErr(listURL, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}})), kind: kindTLS,
			cause: "TLS with storage.googleapis.com failed: certificate not trusted", advice: "install the CA certificates"},
		{name: "401", err: asStore(nil, &googleapi.Error{Code: 401, Message: "Invalid Credentials"}), kind: kindUnauthorized,
			cause: "credentials refused (HTTP 401)", advice: "check that the credentials from secret gcs-secret mounted at /etc/gcs (gc-secret.json) is a valid, current key"},
		{name: "token refused (auth)", err: asStore(nil, urlErr(listURL, &auth.Error{Response: &http.Response{StatusCode: 400}, Body: []byte(`{"error":"invalid_grant"}`)})),
			kind: kindUnauthorized, cause: "the key was refused while fetching an access token", advice: "valid, current key"},
		{name: "token refused (oauth2)", err: asStore(nil, urlErr(listURL, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 401}, ErrorCode: "invalid_client"})),
			kind: kindUnauthorized, cause: "the key was refused while fetching an access token", advice: "valid, current key"},
		{name: "403 read", err: asStore(nil, &googleapi.Error{Code: 403, Message: "x@y.iam.gserviceaccount.com does not have storage.objects.list access"}), kind: kindForbidden,
			cause: "permission denied (HTTP 403)", advice: "has roles/storage.objectViewer on gcs-datasets", notHave: "iam.gserviceaccount.com"},
		{name: "403 write", err: asStore(nil, &googleapi.Error{Code: 403}), scope: func(s *errScope) { s.Write = true }, kind: kindForbidden,
			cause: "permission denied (HTTP 403)", advice: "has roles/storage.objectAdmin on gcs-datasets"},
		{name: "404 bucket", err: asStore(store.ErrNotExist, fmt.Errorf("storage: bucket doesn't exist: %w", &googleapi.Error{Code: 404, Message: "Not Found"})), kind: kindNoBucket,
			cause: "bucket gs://gcs-datasets does not exist (HTTP 404)", advice: "check schema.bucket of connection ds in conns.yaml"},
		{name: "404 bucket of a listing", err: asStore(store.ErrNotExist, &googleapi.Error{Code: 404, Message: "Not Found"}), scope: func(s *errScope) { s.Listing = true },
			kind: kindNoBucket, cause: "bucket gs://gcs-datasets does not exist", advice: "check schema.bucket"},
		{name: "404 object", err: asStore(store.ErrNotExist, errors.New("storage: object doesn't exist")), kind: kindNoObject,
			cause: "no such object or directory", advice: "plxfs ls ds: shows what is there"},
		{name: "412", err: asStore(store.ErrPrecondition, &googleapi.Error{Code: 412, Message: "conditionNotMet"}), kind: kindPrecondition,
			cause: "the object changed meanwhile (HTTP 412", advice: "run the command again"},
		{name: "429", err: asStore(nil, &googleapi.Error{Code: 429}), kind: kindRateLimited, cause: "rate limited by GCS (HTTP 429)", advice: "fewer --workers"},
		{name: "5xx", err: asStore(nil, &googleapi.Error{Code: 503, Message: "Backend Error"}), kind: kindServer, cause: "server error (HTTP 503), still after retries", advice: "try again later"},
		{name: "timeout (context)", err: asStore(nil, fmt.Errorf("retry: %w", context.DeadlineExceeded)), kind: kindTimeout, cause: "timed out", advice: "check the network"},
		{name: "timeout (network)", err: asStore(nil, urlErr(listURL, &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded})), kind: kindTimeout,
			cause: "timed out talking to storage.googleapis.com", advice: "check the network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := scope
			if tc.scope != nil {
				tc.scope(&s)
			}
			err := explainError(s, `listing "ds:train"`, tc.err)
			var ue *userError
			if !errors.As(err, &ue) {
				t.Fatalf("explainError returned %T", err)
			}
			if ue.kind != tc.kind {
				t.Errorf("kind %d, want %d (%v)", ue.kind, tc.kind, tc.err)
			}
			msg := err.Error()
			prefix := `connection "ds": listing "ds:train": `
			if !strings.HasPrefix(msg, prefix) {
				t.Fatalf("message %q does not start with %q", msg, prefix)
			}
			rest := strings.TrimPrefix(msg, prefix)
			ci, ai := strings.Index(rest, tc.cause), strings.Index(rest, tc.advice)
			if ci != 0 || ai < len(tc.cause) {
				t.Errorf("message %q: want the cause %q first, then the advice %q", msg, tc.cause, tc.advice)
			}
			for _, bad := range []string{"?alt=", "prefix=", "googleapi:", "gcs: list", "\n", tc.notHave} {
				if bad != "" && strings.Contains(msg, bad) {
					t.Errorf("message %q contains %q", msg, bad)
				}
			}
			if len(msg) > 250 {
				t.Errorf("message is %d characters: %q", len(msg), msg)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("the explained error does not wrap the original")
			}
		})
	}
}

func TestShortCauseDropsQueries(t *testing.T) {
	got := shortCause(urlErr(listURL, errors.New("something odd")))
	if strings.Contains(got, "?") || !strings.Contains(got, "https://storage.googleapis.com/storage/v1/b/gcs-datasets/o") {
		t.Errorf("shortCause = %q", got)
	}
}

func TestParentRemote(t *testing.T) {
	for in, want := range map[string]string{"ds:a/b": "ds:a", "ds:a": "ds:", "ds:": "ds:", "gs://b/x/y": "gs://b/x", "gs://b/x": "gs://b/"} {
		if got := parentRemote(in); got != want {
			t.Errorf("parentRemote(%q) = %q, want %q", in, got, want)
		}
	}
}
