package integration

// Secrets: every command runs with a service-account key whose content carries a known marker,
// authenticating for real (a signed JWT exchanged at a fake token endpoint, bearer tokens on
// every request) against the emulator, reached as storage.googleapis.com through an HTTPS
// proxy that terminates TLS with a test CA. All output and logs, in text and JSON, at debug
// level, are scanned for the marker, the key's bytes and the access token.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// secretMarker is in the key's private_key (a PEM header), client_email and private_key_id.
const secretMarker = "PLXSECRETc0ffee42"

// tokenMarker is in the access token the fake token endpoint hands out.
const tokenMarker = "ya29.PLXTOKENfeed77"

// secretLab is the fake Google: a token endpoint and a TLS-intercepting HTTPS proxy in front of
// the emulator, with the environment that makes plxfs use them.
type secretLab struct {
	srv        *emulator.Server
	tokenURL   string
	env        []string // HTTPS_PROXY and SSL_CERT_FILE
	tokens     atomic.Int64
	mu         sync.Mutex
	authorized int // requests through the proxy with our bearer token
	anonymous  int // requests through the proxy without it
	hosts      map[string]int
}

func newSecretLab(t *testing.T) *secretLab {
	t.Helper()
	lab := &secretLab{srv: startEmulator(t, emulator.Options{Buckets: []string{relBucket}}), hosts: map[string]int{}}

	tok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		lab.tokens.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tokenMarker, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(tok.Close)
	lab.tokenURL = tok.URL + "/token"

	// A test CA, trusted by plxfs through SSL_CERT_FILE, signs a certificate for whatever
	// host a CONNECT asks for.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plxfs test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	var certMu sync.Mutex
	certs := map[string]*tls.Certificate{}
	tlsConf := &tls.Config{NextProtos: []string{"http/1.1"}, GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		certMu.Lock()
		defer certMu.Unlock()
		if c, ok := certs[h.ServerName]; ok {
			return c, nil
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: h.ServerName},
			DNSNames: []string{h.ServerName}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, err
		}
		c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		certs[h.ServerName] = c
		return c, nil
	}}

	emURL, _ := url.Parse(lab.srv.URL())
	forward := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(emURL)
		r.Out.Host = emURL.Host // the emulator serves XML reads only for its own host
	}}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lab.mu.Lock()
		lab.hosts[r.Host]++
		if r.Header.Get("Authorization") == "Bearer "+tokenMarker {
			lab.authorized++
		} else {
			lab.anonymous++
		}
		lab.mu.Unlock()
		forward.ServeHTTP(w, r)
	})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if _, err := brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n"); err != nil || brw.Flush() != nil {
			conn.Close()
			return
		}
		tc := tls.Server(&bufferedConn{Conn: conn, r: brw.Reader}, tlsConf)
		srv := &http.Server{Handler: inner, ErrorLog: nil}
		srv.Serve(&oneConnListener{c: tc})
	}))
	t.Cleanup(proxy.Close)
	lab.env = []string{"HTTPS_PROXY=" + proxy.URL, "SSL_CERT_FILE=" + caFile}
	return lab
}

// bufferedConn reads what the hijacked connection's reader had buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// oneConnListener hands out one connection, then blocks until it is closed.
type oneConnListener struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.done == nil {
		l.done = make(chan struct{})
	}
	c, done := l.c, l.done
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return &closeNotifyConn{Conn: c, done: done}, nil
	}
	<-done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

type closeNotifyConn struct {
	net.Conn
	once sync.Once
	done chan struct{}
}

func (c *closeNotifyConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

func (lab *secretLab) counts() (authorized, anonymous int, hosts map[string]int) {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	h := map[string]int{}
	for k, v := range lab.hosts {
		h[k] = v
	}
	return lab.authorized, lab.anonymous, h
}

// secretKey is a service-account key with the marker in private_key (a PEM header line),
// client_email and private_key_id; its token_uri is the lab's token endpoint.
type secretKey struct {
	json    []byte
	pemBody string // a slice of the key's base64, also searched for
}

func newSecretKey(t *testing.T, tokenURL string) secretKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	block := &pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Comment": secretMarker}, Bytes: der}
	pemText := string(pem.EncodeToMemory(block))
	b64 := base64.StdEncoding.EncodeToString(der)
	j, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  "proj",
		"private_key_id":              secretMarker + "-kid",
		"private_key":                 pemText,
		"client_email":                "sa-" + secretMarker + "@proj.iam.gserviceaccount.com",
		"client_id":                   "1234567890",
		"auth_uri":                    "https://accounts.google.com/o/oauth2/auth",
		"token_uri":                   tokenURL,
		"auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return secretKey{json: j, pemBody: b64[100:164]}
}

// needles are the strings no output may contain: the marker, the key bytes, the token, and
// the marker as it would look inside a base64 JWT or JSON-escaped.
func needles(k secretKey) []string {
	out := []string{secretMarker, strings.ToLower(secretMarker), k.pemBody, tokenMarker}
	for pad := range 3 {
		enc := base64.RawURLEncoding.EncodeToString(append(bytes.Repeat([]byte{'x'}, pad), secretMarker...))
		out = append(out, enc[(pad*4+2)/3+1:len(enc)-2])
		std := base64.StdEncoding.EncodeToString(append(bytes.Repeat([]byte{'x'}, pad), secretMarker...))
		out = append(out, strings.TrimRight(std, "=")[(pad*4+2)/3+1:len(strings.TrimRight(std, "="))-2])
	}
	return out
}

// leak returns the first needle found in out and where, or "", -1.
func leak(out []byte, ns []string) (string, int) {
	for _, n := range ns {
		if i := bytes.Index(out, []byte(n)); i >= 0 {
			return n, i
		}
	}
	return "", -1
}

// scan fails the test if any needle occurs in out.
func scan(t *testing.T, what string, out []byte, ns []string) {
	t.Helper()
	if n, i := leak(out, ns); i >= 0 {
		lo, hi := max(0, i-120), min(len(out), i+len(n)+40)
		t.Errorf("SECRET LEAK in %s: %q found: ...%s...", what, n, out[lo:hi])
	}
}

// TestSecretNeverPrinted runs every command with a real key holding the marker, from
// GC_KEY_PATH and from GC_KEYFILE_DICT, with text and JSON logs at debug level, and with
// malformed keys holding the marker; no output, log or error contains it.
func TestSecretNeverPrinted(t *testing.T) {
	lab := newSecretLab(t)
	key := newSecretKey(t, lab.tokenURL)
	ns := needles(key)
	// The scan itself must see the key, its JSON-escaped form and a JWT carrying its email.
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"sa-` + secretMarker + `@proj.iam.gserviceaccount.com","aud":"x"}`))
	for _, probe := range []string{string(key.json), strings.ReplaceAll(string(key.json), "\n", "\\n"), "eyJhbGciOiJSUzI1NiJ9." + claims + ".sig"} {
		if _, i := leak([]byte(probe), ns); i < 0 {
			t.Fatalf("the scan does not recognise the secret in %.60q...", probe)
		}
	}
	for n, data := range map[string]string{"pre/data/a.txt": "alpha", "pre/data/sub/b.txt": "bravo"} {
		if err := lab.srv.PutObject(relBucket, n, []byte(data), ""); err != nil {
			t.Fatal(err)
		}
	}
	conf := relConns(t)
	keyFile := filepath.Join(t.TempDir(), "gc-secret.json")
	if err := os.WriteFile(keyFile, key.json, 0o600); err != nil {
		t.Fatal(err)
	}
	local := writeFile(t, "local.txt", "uploaded with the key")
	var scanned, runs atomic.Int64

	sources := []struct {
		name string
		env  string
	}{
		{"GC_KEY_PATH", "GC_KEY_PATH=" + keyFile},
		{"GC_KEYFILE_DICT", "GC_KEYFILE_DICT=" + string(key.json)},
	}
	for _, src := range sources {
		for _, format := range []string{"text", "json"} {
			env := append([]string{src.env, "PLXFS_LOG_LEVEL=debug", "PLXFS_LOG_FORMAT=" + format}, lab.env...)
			what := src.name + "/" + format
			run := func(wantOK bool, args ...string) result {
				t.Helper()
				res := runPlxfs(t, env, args...)
				runs.Add(1)
				scanned.Add(int64(len(res.Stdout) + len(res.Stderr)))
				scan(t, fmt.Sprintf("%s: plxfs %s", what, strings.Join(args, " ")), []byte(res.Stdout+res.Stderr), ns)
				if wantOK && res.Code != 0 {
					t.Errorf("%s: plxfs %s: exit %d\n%s", what, strings.Join(args, " "), res.Code, res.Stderr)
				}
				return res
			}
			c := []string{"--config", conf}
			res := run(true, append([]string{"connections", "list"}, c...)...)
			if !strings.Contains(res.Stdout, src.name) {
				t.Errorf("%s: connections list does not say where the key comes from:\n%s", what, res.Stdout)
			}
			run(true, append([]string{"connections", "list", "-o", "json"}, c...)...)
			run(true, append([]string{"connections", "check"}, c...)...)
			if res := run(true, append([]string{"ls", "-r", "-l"}, append(c, "ds:data")...)...); !strings.Contains(res.Stdout, "b.txt") {
				t.Errorf("%s: ls through the authenticated path: %q", what, res.Stdout)
			}
			run(true, append([]string{"upload"}, append(c, local, "ds:up/"+format+src.name+".txt")...)...)
			dl := t.TempDir()
			run(true, append([]string{"download", "-r"}, append(c, "ds:data", dl)...)...)
			if got, _ := os.ReadFile(filepath.Join(dl, "data", "sub", "b.txt")); string(got) != "bravo" {
				t.Errorf("%s: download -r: %q", what, got)
			}
			run(true, append([]string{"init", "--connection", "ds", "--dirs", "data", "--path", t.TempDir()}, c...)...)
			run(true, append([]string{"kube", "sidecar", "--image", "plxfs:test"}, c...)...)
			run(false, append([]string{"ls"}, append(c, "ds:does-not-exist")...)...)
			run(false, append([]string{"download"}, append(c, "ds:nope.bin", t.TempDir())...)...)

			// mount, use, unmount with the unmount command.
			d := startRelMount(t, mountOpts{config: conf, env: env, flags: []string{"--cache-size", "64MiB", "--chunk-size", "1MiB"}})
			if got, err := os.ReadFile(d.path("ds", "data", "a.txt")); err != nil || string(got) != "alpha" {
				t.Errorf("%s: read through the authenticated mount: %q %v", what, got, err)
			}
			if err := os.WriteFile(d.path("ds", "written-"+format+src.name), []byte("x"), 0o644); err != nil {
				t.Errorf("%s: write through the authenticated mount: %v", what, err)
			}
			run(true, "unmount", d.mnt)
			select {
			case <-d.exitedCh():
			case <-time.After(60 * time.Second):
				t.Fatalf("%s: the daemon did not exit after plxfs unmount", what)
			}
			log := d.fullLog()
			runs.Add(1)
			scanned.Add(int64(len(log)))
			scan(t, what+": plxfs mount log", log, ns)
		}
	}
	auth, anon, hosts := lab.counts()
	t.Logf("authenticated path: %d token exchanges, %d requests with the bearer token, %d without, hosts %v",
		lab.tokens.Load(), auth, anon, hosts)
	if lab.tokens.Load() == 0 || auth == 0 || hosts["storage.googleapis.com"] == 0 {
		t.Fatalf("the key was never used: %d tokens, %d authorized requests, hosts %v (the test proves nothing)", lab.tokens.Load(), auth, hosts)
	}
	if anon > 0 {
		t.Errorf("%d requests reached storage.googleapis.com without the bearer token", anon)
	}

	// Help and usage output, with the key in the environment.
	env := append([]string{"GC_KEYFILE_DICT=" + string(key.json), "GC_KEY_PATH=" + keyFile, "PLXFS_LOG_LEVEL=debug"}, lab.env...)
	helps := [][]string{{"--help"}, {"--version"}, {"help"}, {"connections", "--help"}, {"connections", "list", "--help"},
		{"connections", "check", "--help"}, {"mount", "--help"}, {"unmount", "--help"}, {"ls", "--help"}, {"rm", "--help"},
		{"upload", "--help"}, {"download", "--help"}, {"init", "--help"}, {"kube", "--help"}, {"kube", "sidecar", "--help"},
		{"wait", "--help"}, {"demo", "--help"}, {"mount"}, {"ls"}, {"no-such-command"}, {"ls", "--no-such-flag"}}
	for _, h := range helps {
		res := runPlxfs(t, env, h...)
		runs.Add(1)
		scanned.Add(int64(len(res.Stdout) + len(res.Stderr)))
		scan(t, "plxfs "+strings.Join(h, " "), []byte(res.Stdout+res.Stderr), ns)
	}

	// Malformed keys holding the marker: every command fails, and says why without quoting.
	validPEM := func() string {
		var k map[string]string
		json.Unmarshal(key.json, &k)
		return k["private_key"]
	}()
	badKeys := []struct {
		name string
		env  func(dir string) string
	}{
		{"truncated JSON in GC_KEYFILE_DICT", func(string) string {
			return "GC_KEYFILE_DICT=" + string(key.json[:len(key.json)/2])
		}},
		{"private_key not PEM", func(string) string {
			return `GC_KEYFILE_DICT={"type":"service_account","client_email":"sa-` + secretMarker + `@p.iam.gserviceaccount.com","private_key":"` + secretMarker + `-not-a-pem","private_key_id":"` + secretMarker + `"}`
		}},
		{"PEM of garbage", func(string) string {
			bad := strings.Replace(validPEM, key.pemBody[:20], secretMarker+"!!", 1)
			j, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com", "private_key": bad})
			return "GC_KEYFILE_DICT=" + string(j)
		}},
		{"unknown key type", func(string) string {
			return `GC_KEYFILE_DICT={"type":"` + secretMarker + `","private_key":"` + secretMarker + `"}`
		}},
		{"key JSON in GC_KEY_PATH", func(string) string { return "GC_KEY_PATH=" + string(key.json) }},
		{"key file with a syntax error", func(dir string) string {
			p := filepath.Join(dir, "bad.json")
			os.WriteFile(p, append([]byte(`{"private_key": "`+secretMarker+`", `), key.json...), 0o600)
			return "GC_KEY_PATH=" + p
		}},
		{"missing key file", func(dir string) string {
			return "GC_KEY_PATH=" + filepath.Join(dir, "missing.json")
		}},
	}
	refused := 0
	for _, bk := range badKeys {
		for _, format := range []string{"text", "json"} {
			env := append([]string{bk.env(t.TempDir()), "PLXFS_LOG_LEVEL=debug", "PLXFS_LOG_FORMAT=" + format}, lab.env...)
			c := []string{"--config", conf}
			for _, args := range [][]string{
				append([]string{"connections", "list"}, c...),
				append([]string{"connections", "check"}, c...),
				append([]string{"ls"}, append(c, "ds:data")...),
				append([]string{"upload"}, append(c, local, "ds:bad.txt")...),
				append([]string{"download"}, append(c, "ds:data/a.txt", t.TempDir())...),
				append([]string{"init", "--connection", "ds", "--path", t.TempDir()}, c...),
				append([]string{"mount", "--cache-dir", t.TempDir()}, append(c, t.TempDir())...),
			} {
				res := runPlxfs(t, env, args...)
				runs.Add(1)
				scanned.Add(int64(len(res.Stdout) + len(res.Stderr)))
				what := fmt.Sprintf("%s (%s): plxfs %s", bk.name, format, args[0])
				scan(t, what, []byte(res.Stdout+res.Stderr), ns)
				if args[0] == "connections" && args[1] == "list" {
					continue // list may show the problem per connection and exit 0 or 1
				}
				if res.Code == 0 {
					t.Errorf("%s: exit 0 with a malformed key\n%s", what, res.Stderr)
				} else {
					refused++
				}
			}
		}
	}
	t.Logf("secret scan: %d runs, %d bytes of output and logs scanned, %d refusals of malformed keys, marker never found: %v",
		runs.Load(), scanned.Load(), refused, !t.Failed())
}
