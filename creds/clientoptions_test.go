package creds

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	htransport "google.golang.org/api/transport/http"
)

// tokenServer is a fake OAuth token endpoint. check inspects each token request and returns
// the access token to hand out, or fails the test.
func tokenServer(t *testing.T, check func(t *testing.T, r *http.Request) string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("token request: %v", err)
		}
		tok := check(t, r)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": tok, "token_type": "Bearer", "expires_in": 3600,
			"issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// apiServer records the Authorization header of the requests it gets.
type apiServer struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newAPIServer(t *testing.T) *apiServer {
	a := &apiServer{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		a.mu.Unlock()
	}))
	t.Cleanup(a.Close)
	return a
}

// callWith makes one request to api through an HTTP client built from c.ClientOptions, the way
// a Google API client is built, and returns the Authorization header the API saw.
func callWith(t *testing.T, c Credentials, api *apiServer) string {
	t.Helper()
	ctx := context.Background()
	opts, err := c.ClientOptions(ctx)
	if err != nil {
		t.Fatalf("ClientOptions: %v", err)
	}
	hc, _, err := htransport.NewClient(ctx, opts...)
	if err != nil {
		t.Fatalf("building an HTTP client from ClientOptions: %v", err)
	}
	resp, err := hc.Get(api.URL)
	if err != nil {
		t.Fatalf("request through the client: %v", err)
	}
	resp.Body.Close()
	api.mu.Lock()
	defer api.mu.Unlock()
	return api.auth[len(api.auth)-1]
}

// verifyJWT checks an RS256 JWT against the test key and returns its claims.
func verifyJWT(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion is not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&testRSAKey().PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("assertion is not signed by the key's private_key: %v", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestClientOptionsServiceAccount follows a service account key from GC_KEYFILE_DICT (with
// escaped newlines, as pasted through a shell) to a signed token request and an authenticated
// API call.
func TestClientOptionsServiceAccount(t *testing.T) {
	api := newAPIServer(t)
	var tok *httptest.Server
	tok = tokenServer(t, func(t *testing.T, r *http.Request) string {
		if g := r.Form.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			t.Errorf("grant_type = %q", g)
		}
		claims := verifyJWT(t, r.Form.Get("assertion"))
		if claims["iss"] != "sa-"+marker+"@proj.iam.gserviceaccount.com" {
			t.Errorf("iss = %v", claims["iss"])
		}
		if claims["scope"] != "https://a/s1 https://a/s2" {
			t.Errorf("scope = %v, want the configured scopes", claims["scope"])
		}
		if claims["aud"] != tok.URL {
			t.Errorf("aud = %v, want the key's token_uri %s", claims["aud"], tok.URL)
		}
		return "sa-token"
	})
	keyJSON := saKey(map[string]any{
		"token_uri":   tok.URL,
		"private_key": strings.ReplaceAll(testPEM(), "\n", `\n`),
	})
	env := EnvFrom(map[string]string{"GC_KEYFILE_DICT": string(keyJSON), "GC_SCOPES": "https://a/s1,https://a/s2"}, nil)
	c, err := Resolve(conn(nil), env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := callWith(t, c, api); got != "Bearer sa-token" {
		t.Errorf("Authorization = %q, want the token from the key's token endpoint", got)
	}
}

// TestClientOptionsExternalAccount runs a workload-identity-federation key through a fake STS.
func TestClientOptionsExternalAccount(t *testing.T) {
	api := newAPIServer(t)
	subject := filepath.Join(t.TempDir(), "subject-token")
	if err := os.WriteFile(subject, []byte("subject-"+marker), 0o600); err != nil {
		t.Fatal(err)
	}
	sts := tokenServer(t, func(t *testing.T, r *http.Request) string {
		if got := r.Form.Get("subject_token"); got != "subject-"+marker {
			t.Errorf("subject_token = %q, want the credential_source file's contents", got)
		}
		if got := r.Form.Get("audience"); got != "//iam.googleapis.com/test-pool" {
			t.Errorf("audience = %q", got)
		}
		if got := r.Form.Get("scope"); got != DefaultScopes[0] {
			t.Errorf("scope = %q, want the default scope", got)
		}
		return "sts-token"
	})
	keyJSON := extKey(map[string]any{
		"audience":          "//iam.googleapis.com/test-pool",
		"token_url":         sts.URL,
		"credential_source": map[string]any{"file": subject},
	})
	env := EnvFrom(map[string]string{"GOOGLE_KEYFILE_DICT": string(keyJSON)}, nil)
	c, err := Resolve(conn(nil), env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := callWith(t, c, api); got != "Bearer sts-token" {
		t.Errorf("Authorization = %q, want the STS token", got)
	}
}

// TestClientOptionsAuthorizedUser checks that the Google client accepts the key. Its token
// endpoint is fixed to Google's, so no call is made.
func TestClientOptionsAuthorizedUser(t *testing.T) {
	c, err := Resolve(conn(nil), EnvFrom(map[string]string{"GC_KEYFILE_DICT": string(userKey(nil))}, nil), Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.ClientOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := htransport.NewClient(context.Background(), opts...); err != nil {
		t.Fatalf("the Google client rejects the authorized_user key: %v", err)
	}
}

// TestClientOptionsADC checks that for ADC only the scopes are passed and the client finds the
// credentials itself (here through GOOGLE_APPLICATION_CREDENTIALS, set for this test only).
func TestClientOptionsADC(t *testing.T) {
	api := newAPIServer(t)
	tok := tokenServer(t, func(t *testing.T, r *http.Request) string {
		if scope := verifyJWT(t, r.Form.Get("assertion"))["scope"]; scope != "https://a/adc" {
			t.Errorf("scope = %v, want the configured scope", scope)
		}
		return "adc-token"
	})
	keyFile := filepath.Join(t.TempDir(), "adc.json")
	if err := os.WriteFile(keyFile, saKey(map[string]any{"token_uri": tok.URL}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", keyFile)

	// Resolve sees an environment without it, so it settles on ADC.
	c, err := Resolve(conn(nil), EnvFrom(map[string]string{"GC_SCOPES": "https://a/adc"}, nil), Options{})
	if err != nil || c.Type != TypeADC {
		t.Fatalf("Resolve = %v, %v; want ADC", c, err)
	}
	if got := callWith(t, c, api); got != "Bearer adc-token" {
		t.Errorf("Authorization = %q, want the token of the ADC key", got)
	}
}

func TestClientOptionsWithoutAuthentication(t *testing.T) {
	api := newAPIServer(t)
	for _, opts := range []Options{{Anonymous: true}, {Emulator: true}} {
		c, err := Resolve(conn(nil), EnvFrom(nil, nil), opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := callWith(t, c, api); got != "" {
			t.Errorf("%s: Authorization = %q, want none", c.Type, got)
		}
	}
}

func TestClientOptionsErrors(t *testing.T) {
	for _, c := range []Credentials{
		{},
		{Type: TypeServiceAccount, Source: "made by hand"},
		{Type: "kerberos"},
	} {
		if _, err := c.ClientOptions(context.Background()); err == nil {
			t.Errorf("ClientOptions(%#v) succeeded", c)
		}
	}
}
