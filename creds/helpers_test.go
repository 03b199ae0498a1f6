package creds

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// marker is planted in every key value the tests use; it must never show up in an error, a
// description or a log line.
const marker = "MRKR-q7Zx"

var testRSAKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// testPEM is the test RSA key as a PKCS#8 PEM block, the form Google issues.
func testPEM() string {
	der, err := x509.MarshalPKCS8PrivateKey(testRSAKey())
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// pemBody is a slice of the base64 body of testPEM: key material that must never leak.
func pemBody() string {
	lines := strings.Split(testPEM(), "\n")
	return lines[3] // a full 64-character line from the middle of the key
}

// keyJSON marshals base with over applied (a nil value deletes the field).
func keyJSON(base, over map[string]any) []byte {
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

func saKey(over map[string]any) []byte {
	return keyJSON(map[string]any{
		"type":           "service_account",
		"project_id":     "proj-from-key",
		"private_key_id": "kid-" + marker,
		"private_key":    testPEM(),
		"client_email":   "sa-" + marker + "@proj.iam.gserviceaccount.com",
		"client_id":      "cid-" + marker,
		"token_uri":      "https://oauth2.googleapis.com/token",
	}, over)
}

func userKey(over map[string]any) []byte {
	return keyJSON(map[string]any{
		"type":          "authorized_user",
		"client_id":     "cid-" + marker,
		"client_secret": "secret-" + marker,
		"refresh_token": "refresh-" + marker,
	}, over)
}

func extKey(over map[string]any) []byte {
	return keyJSON(map[string]any{
		"type":               "external_account",
		"audience":           "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p-" + marker + "/providers/x",
		"subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
		"token_url":          "https://sts.googleapis.com/v1/token",
		"credential_source":  map[string]any{"file": "/var/run/token-" + marker},
	}, over)
}

// assertNoLeak fails if any rendering of v contains key material.
func assertNoLeak(t *testing.T, what string, v any) {
	t.Helper()
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		s := fmt.Sprintf(f, v)
		for _, secret := range []string{marker, pemBody(), "PRIVATE KEY"} {
			if strings.Contains(s, secret) {
				t.Errorf("%s rendered with %s leaks key material %q:\n%s", what, f, secret, s)
			}
		}
	}
}

// pkcs1PEM is the test RSA key in the older "RSA PRIVATE KEY" (PKCS#1) form.
func pkcs1PEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey())}))
}
