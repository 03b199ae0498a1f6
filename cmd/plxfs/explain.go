package main

// Errors as the user reads them. A failure that reaches the terminal says, in this order: the
// connection, what plxfs was doing (in words, with the remote the user gave), the cause in a
// few words, and what to do:
//
//	plxfs: connection "ds": listing ds:train: permission denied (HTTP 403); check that the
//	key from secret gcs-secret mounted at /etc/gcs has roles/storage.objectViewer on gcs-datasets
//
// The error values underneath (googleapi.Error, url.Error, net.DNSError, x509 errors, token
// errors) carry full request URLs with every query parameter; those are logged at
// --log-level debug only. classify maps the values to a kind; explain turns a kind and the
// scope of the operation into cause and advice.

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
	"regexp"
	"strings"
	"syscall"

	"cloud.google.com/go/auth"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/plxfs/plxfs/store"
)

// errKind is what class of failure an error is.
type errKind int

const (
	kindUnknown      errKind = iota
	kindDNS                  // the host name does not resolve
	kindRefused              // nothing listens (or a firewall rejects)
	kindTLS                  // certificate not trusted, handshake failed
	kindUnauthorized         // 401, or the token endpoint refused the key
	kindForbidden            // 403
	kindNoBucket             // 404 for the bucket
	kindNoObject             // 404 for an object
	kindPrecondition         // 412
	kindRateLimited          // 429
	kindServer               // 5xx
	kindTimeout              // a deadline or a network timeout
	kindCanceled             // the user interrupted
)

// classified is what classify found in an error chain.
type classified struct {
	kind   errKind
	host   string // the host the failed request went to, when known (never a full URL)
	status int    // the HTTP status, when there was one
	token  bool   // the failure happened fetching an OAuth access token
}

// tokenHosts are where Google credentials fetch access tokens.
var tokenHosts = []string{"oauth2.googleapis.com", "accounts.google.com", "sts.googleapis.com", "iamcredentials.googleapis.com", "metadata.google.internal", "169.254.169.254"}

// classify finds the kind of failure in err's chain.
func classify(err error) classified {
	var c classified
	if err == nil {
		return c
	}
	// Every url.Error in the chain: the innermost names the host that failed; a token host
	// anywhere means the token fetch failed (the storage request wraps it).
	walkErrors(err, func(e error) {
		if ue, ok := e.(*url.Error); ok {
			if u, perr := url.Parse(ue.URL); perr == nil {
				c.host = u.Hostname()
				if isTokenURL(u) {
					c.token = true
				}
			}
		}
	})
	var (
		dnsErr   *net.DNSError
		gerr     *googleapi.Error
		authErr  *auth.Error
		oaErr    *oauth2.RetrieveError
		unknownA x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		netErr   net.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		c.kind = kindCanceled
	case errors.As(err, &authErr), errors.As(err, &oaErr):
		c.token = true
		c.kind = kindUnauthorized
		if authErr != nil && authErr.Response != nil {
			c.status = authErr.Response.StatusCode
		} else if oaErr != nil && oaErr.Response != nil {
			c.status = oaErr.Response.StatusCode
		}
		if c.status >= 500 {
			c.kind = kindServer
		}
		if authErr != nil && authErr.Response == nil && authErr.Err != nil {
			// A transport failure wrapped as an auth error: classify what is underneath.
			inner := classify(authErr.Err)
			if inner.kind != kindUnknown {
				inner.token = true
				if inner.host == "" {
					inner.host = c.host
				}
				return inner
			}
		}
	case errors.As(err, &dnsErr):
		c.kind = kindDNS
		if dnsErr.Name != "" {
			c.host = dnsErr.Name
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		c.kind = kindRefused
	case errors.As(err, &unknownA), errors.As(err, &hostErr), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &record):
		c.kind = kindTLS
	case errors.As(err, &gerr):
		c.status = gerr.Code
		c.kind = kindOfStatus(gerr.Code, gerr.Message)
		if c.kind == kindNoObject && mentionsMissingBucket(err.Error()) {
			c.kind = kindNoBucket // the Go client's "storage: bucket doesn't exist" above a bare 404
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		c.kind = kindTimeout
	case errors.Is(err, store.ErrPrecondition):
		c.kind, c.status = kindPrecondition, http.StatusPreconditionFailed
	case errors.Is(err, store.ErrNotExist):
		c.kind, c.status = kindNoObject, http.StatusNotFound
		if mentionsMissingBucket(err.Error()) {
			c.kind = kindNoBucket
		}
	}
	if c.token && c.kind == kindUnknown && strings.Contains(err.Error(), "cannot fetch token") {
		c.kind = kindUnauthorized
	}
	return c
}

// kindOfStatus maps an HTTP status from GCS to a kind.
func kindOfStatus(code int, message string) errKind {
	switch {
	case code == http.StatusUnauthorized:
		return kindUnauthorized
	case code == http.StatusForbidden:
		return kindForbidden
	case code == http.StatusNotFound:
		if mentionsMissingBucket(message) {
			return kindNoBucket
		}
		return kindNoObject
	case code == http.StatusPreconditionFailed:
		return kindPrecondition
	case code == http.StatusTooManyRequests:
		return kindRateLimited
	case code == http.StatusRequestTimeout || code == http.StatusGatewayTimeout:
		return kindTimeout
	case code >= 500:
		return kindServer
	}
	return kindUnknown
}

// mentionsMissingBucket recognises GCS's and the Go client's words for a missing bucket.
func mentionsMissingBucket(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "bucket does not exist") || strings.Contains(m, "bucket doesn't exist") ||
		strings.Contains(m, "no such bucket") || strings.Contains(m, "bucket not found")
}

func isTokenURL(u *url.URL) bool {
	for _, h := range tokenHosts {
		if u.Hostname() == h {
			return true
		}
	}
	return strings.HasSuffix(u.Path, "/token")
}

// walkErrors calls fn for err and every error it wraps, depth first.
func walkErrors(err error, fn func(error)) {
	if err == nil {
		return
	}
	fn(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, fn)
		}
	}
}

// errScope is what an explanation needs to know about the operation that failed.
type errScope struct {
	Conn     string // the connection's name, or gs://BUCKET for a bucket URL
	Bucket   string
	Creds    string // where the credentials came from (creds.Credentials.Source); never a key
	Endpoint string // --endpoint, "" for GCS
	Write    bool   // the operation creates or deletes objects
	Remote   string // the remote the user gave (CONNECTION:PATH), for "plxfs ls" hints
	Config   string // the connections file, for "check schema.bucket in FILE"
	// Listing: the operation lists objects, so a 404 is the bucket's (a prefix with nothing
	// under it lists as empty, never as not found).
	Listing bool
}

// explain returns the cause in a few words and what to do, for a classified error.
func explain(c classified, s errScope, err error) (cause, advice string) {
	host := c.host
	if host == "" {
		host = "the storage endpoint"
	}
	during := ""
	if c.token {
		during = " while fetching an access token"
	}
	role := "roles/storage.objectViewer"
	if s.Write {
		role = "roles/storage.objectAdmin"
	}
	key := "the credentials"
	if s.Creds != "" {
		key = "the credentials from " + s.Creds
	}
	bucket := s.Bucket
	if bucket == "" {
		bucket = "the bucket"
	}
	switch c.kind {
	case kindDNS:
		cause = "cannot resolve host " + host + during
		if s.Endpoint != "" && !c.token {
			advice = "check --endpoint (or $STORAGE_EMULATOR_HOST): " + s.Endpoint
		} else {
			advice = "check the network and DNS: this machine (or pod) must reach " + host
		}
	case kindRefused:
		cause = "connection to " + host + " refused" + during
		if s.Endpoint != "" && !c.token {
			advice = "is the emulator running at " + s.Endpoint + "? check --endpoint (or $STORAGE_EMULATOR_HOST)"
		} else {
			advice = "check the network, the firewall and any proxy ($HTTPS_PROXY)"
		}
	case kindTLS:
		cause = "TLS with " + host + " failed: certificate not trusted" + during
		advice = "install the CA certificates (Debian: apt-get install ca-certificates), or add the CA of a TLS-inspecting proxy to the system store"
	case kindUnauthorized:
		if c.token {
			cause = "the key was refused" + during
		} else {
			cause = "credentials refused (HTTP 401)"
		}
		advice = "check that " + key + " is a valid, current key (not deleted or disabled, of the right project)"
	case kindForbidden:
		cause = "permission denied (HTTP 403)"
		advice = "check that " + key + " has " + role + " on " + bucket
	case kindNoBucket:
		cause = "bucket gs://" + strings.TrimPrefix(bucket, "gs://") + " does not exist (HTTP 404)"
		switch {
		case s.Config != "" && !strings.HasPrefix(s.Conn, "gs://"):
			advice = "check schema.bucket of connection " + s.Conn + " in " + s.Config
		default:
			advice = "check the bucket name"
		}
	case kindNoObject:
		cause = "no such object or directory"
		advice = "check the path"
		if s.Remote != "" {
			advice = "check the path: plxfs ls " + parentRemote(s.Remote) + " shows what is there"
		}
	case kindPrecondition:
		cause = "the object changed meanwhile (HTTP 412, precondition failed)"
		advice = "another writer changed it; run the command again"
	case kindRateLimited:
		cause = "rate limited by GCS (HTTP 429), still after retries"
		advice = "try again later, or with fewer --workers"
	case kindServer:
		cause = fmt.Sprintf("server error (HTTP %d), still after retries%s", c.status, during)
		advice = "try again later; if it lasts, see https://status.cloud.google.com"
	case kindTimeout:
		cause = "timed out"
		if c.host != "" {
			cause += " talking to " + c.host
		}
		cause += during
		advice = "check the network, then try again"
	case kindCanceled:
		cause = "interrupted"
	default:
		cause = shortCause(err)
	}
	return cause, advice
}

// parentRemote is the remote one level up: ds:a/b → ds:a, ds:a → ds:, gs://b/x → gs://b/.
func parentRemote(remote string) string {
	if rest, ok := strings.CutPrefix(remote, "gs://"); ok {
		bucket, p, _ := strings.Cut(rest, "/")
		p = strings.Trim(p, "/")
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			return "gs://" + bucket + "/" + p[:i]
		}
		return "gs://" + bucket + "/"
	}
	name, p, _ := strings.Cut(remote, ":")
	p = strings.Trim(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return name + ":" + p[:i]
	}
	return name + ":"
}

// urlPattern matches URLs in error text, so that a message shows scheme, host and path only.
var urlPattern = regexp.MustCompile(`https?://[^\s"']+`)

// shortCause is an unclassified error's own text on one line, with URLs cut to their host and
// path (query strings hold upload ids and every parameter) and without the Go client's
// "googleapi: " and "gcs: OP gs://...: " prefixes.
func shortCause(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	msg = urlPattern.ReplaceAllStringFunc(msg, func(s string) string {
		u, perr := url.Parse(s)
		if perr != nil {
			return s
		}
		return u.Scheme + "://" + u.Host + u.Path
	})
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// userError is a failure as the user reads it; the underlying error stays reachable with
// errors.Unwrap for --log-level debug and for errors.Is.
type userError struct {
	scope  errScope
	doing  string // "listing ds:train", in words, with the remote as given
	cause  string
	advice string
	kind   errKind
	err    error
}

func (e *userError) Error() string {
	var b strings.Builder
	if e.scope.Conn != "" {
		fmt.Fprintf(&b, "connection %q: ", e.scope.Conn)
	}
	if e.doing != "" {
		b.WriteString(e.doing)
		b.WriteString(": ")
	}
	b.WriteString(e.cause)
	if e.advice != "" {
		b.WriteString("; ")
		b.WriteString(e.advice)
	}
	return b.String()
}

func (e *userError) Unwrap() error { return e.err }

// explainError wraps err for the user: connection, what was being done, cause, advice. An
// error that is already explained, a usage error and nil are returned as they are.
func explainError(s errScope, doing string, err error) error {
	if err == nil || isUsageError(err) {
		return err
	}
	var ue *userError
	if errors.As(err, &ue) {
		return err
	}
	c := classify(err)
	if s.Listing && c.kind == kindNoObject {
		c.kind = kindNoBucket
	}
	cause, advice := explain(c, s, err)
	return &userError{scope: s, doing: doing, cause: cause, advice: advice, kind: c.kind, err: err}
}

// errorDetail is the full text of the error under an explained one, for the debug log.
func errorDetail(err error) (string, bool) {
	var ue *userError
	if !errors.As(err, &ue) || ue.err == nil {
		return "", false
	}
	return ue.err.Error(), true
}
